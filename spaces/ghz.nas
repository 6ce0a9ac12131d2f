# GHZ-state preparation (DQAS, Zhang et al. 2020): from |0...0> to (|0...0> + |1...1>) / sqrt 2.
# Each of `qubits` placeholders applies one gate of the pool; the known optimum is a Hadamard on
# qubit 0 followed by the CNOT chain 0->1, 1->2, ... (fidelity 1).

gates pool = {h on each, rx on each, cnot on chain}

circuit ghz(qubits = 4) {
    task ghz
    repeat qubits {
        place pool
    }
}
