# GHZ-state preparation (DQAS, Zhang et al. 2020): from |0...0> to (|0...0> + |1...1>) / sqrt 2.
# A first placeholder puts one qubit into superposition, then `qubits - 1` placeholders each
# apply one CNOT of the chain. The optimum is a Hadamard (or ry(pi/2)) on qubit 0 followed by
# the CNOTs 0->1, 1->2, ... in that order (fidelity 1); every other structure stays below 1.

gates starts = {h on each, ry on each, rx on each}

circuit ghz(qubits = 4) {
    task ghz
    place start = starts
    repeat qubits - 1 {
        place link = {cnot on chain}
    }
}
