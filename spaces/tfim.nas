# The ground state of the transverse-field Ising chain H = -J sum Z_i Z_i+1 - h sum X_i (open
# chain, J = h = 1: the critical point), by a layered ansatz whose layers DQAS designs.

gates rotations = {rx on all, ry on all, rz on all, id}
gates entanglers = {cnot on all chain, rzz on all chain, cz on all chain, id}

circuit tfim(qubits = 6, layers = 3) {
    task tfim(field = 1.0, coupling = 1.0)
    apply h on all
    repeat layers {
        place rotation = rotations
        place entangler = entanglers
    }
}
