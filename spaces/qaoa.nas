# QAOA layouts for MaxCut on a random 3-regular graph (DQAS, Zhang et al. 2020): each layer
# chooses its cost block and its mixer, each with one angle shared over the layer. The standard
# QAOA ansatz of depth `layers` is one structure of the space: rzz on the graph's edges, then
# rx on every qubit, in every layer.

gates costs = {rzz on all edges shared, rxx on all edges shared, id}
gates mixers = {rx on all shared, ry on all shared, id}

circuit qaoa(qubits = 8, layers = 2, graph_seed = 1) {
    task maxcut
    graph regular(3, seed = graph_seed)
    apply h on all
    repeat layers {
        place cost = costs
        place mixer = mixers
    }
}
