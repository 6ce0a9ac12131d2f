# QAOA layouts for MaxCut on a random 3-regular graph (DQAS, Zhang et al. 2020): each layer
# chooses its cost and mixer blocks; the standard QAOA ansatz of depth `layers` is one choice
# (rzz on the graph's edges with one shared angle, then rx on all qubits with one shared angle).

gates costs = {rzz on all edges shared, rzz on all edges, cz on all edges, id}
gates mixers = {rx on all shared, rx on all, ry on all shared, ry on all}

circuit qaoa(qubits = 8, layers = 2, graph_seed = 1) {
    task maxcut
    graph regular(3, seed = graph_seed)
    apply h on all
    repeat layers {
        place cost = costs
        place mixer = mixers
    }
}
