# An LSTM (Hochreiter and Schmidhuber, 1997), as torch.nn.LSTM computes it: the four gates from
# the input at step t and the state h of step t - 1, each through its own dense layers (the
# input's bias and the state's, as torch keeps both), the cell state c carried beside h.
# `nasc` checks, shows and compiles it; with torch's weights copied in it gives torch's outputs.

cell lstm(x, h, c) {
    zi = x:fc + h:fc      # input gate, before its sigmoid
    zf = x:fc + h:fc      # forget gate
    zg = x:fc + h:fc      # candidate values
    zo = x:fc + h:fc      # output gate
    i = zi:act_sigmoid
    f = zf:act_sigmoid
    g = zg:act_tanh
    o = zo:act_sigmoid
    kept = f:id * c:id     # f * c: what the cell keeps of its state
    added = i:id * g:id    # i * g: what it writes
    c1 = kept:id + added:id
    h1 = o:id * c1:act_tanh
    out h1
    next h = h1
    next c = c1
}

network lstm_net(features = 8, hidden = 16) {
    input sequence(features)
    lstm @ hidden
    head decoder(features)
}
