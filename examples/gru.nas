# A GRU (Cho et al., 2014), as torch.nn.GRU computes it: the reset gate r and the update gate z
# from the input at step t and the state h of step t - 1, the candidate n from the input and the
# reset state, and the next state n + z (h - n) = (1 - z) n + z h. Every dense layer has a bias,
# as torch's gates keep the input's bias and the state's.

cell gru(x, h) {
    zr = x:fc + h:fc          # reset gate, before its sigmoid
    zz = x:fc + h:fc          # update gate
    hn = h:fc                    # W_hn h + b_hn, which the reset gate scales
    r = zr:act_sigmoid
    z = zz:act_sigmoid
    reset = r:id * hn:id
    zn = x:fc + reset:id
    n = zn:act_tanh                     # the candidate state
    d = h:id + n:negate          # h - n
    kept = z:id * d:id  # z (h - n)
    h1 = n:id + kept:id
    out h1
    next h = h1
}

network gru_net(features = 8, hidden = 16) {
    input sequence(features)
    gru @ hidden
    head decoder(features)
}
