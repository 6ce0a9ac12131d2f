# DARTS (Liu et al., ICLR 2019): the recurrent cell search space, searched on Penn Treebank.
# A cell reads the input x at step t and its state h of step t - 1. Its first node mixes the two
# through a highway; each of 8 more nodes is a highway from one earlier node, s + c (f(W_h s) - s)
# with the gate c = sigmoid(W_c s), whose activation f is searched among tanh, ReLU, sigmoid
# and identity (or the node reads nothing from that predecessor: `none`). One candidate survives
# per node; the cell's output, which is also its next state, is the mean of the 8 nodes.
# The evaluation network embeds tokens, runs the cell over the sequence and decodes each step
# with the embedding's weight (tied weights). DARTS searches at 300 units and evaluates at 850.

preset darts

# The candidates: highways s + sigmoid(W_c s) (f(W_h s) - s), both W without a bias, one per
# activation f. The outer residual adds s; the product multiplies the gate by f(W_h s) - s.

# A highway through tanh.
op highway_tanh = residual(product(dense(bias = 0) -> sigmoid,
    residual(dense(bias = 0) -> tanh, neg)))

# A highway through ReLU.
op highway_relu = residual(product(dense(bias = 0) -> sigmoid,
    residual(dense(bias = 0) -> relu, neg)))

# A highway through sigmoid.
op highway_sigmoid = residual(product(dense(bias = 0) -> sigmoid,
    residual(dense(bias = 0) -> sigmoid, neg)))

# A highway without activation.
op highway_identity = residual(product(dense(bias = 0) -> sigmoid,
    residual(dense(bias = 0), neg)))

ops rnn = {none, highway_tanh, highway_relu, highway_sigmoid, highway_identity}

cell darts_rnn(x, h) {
    # The first node, a highway from [x, h]: c0 = sigmoid(W x + W h), s0 = h + c0 (tanh(...) - h).
    zc = x:fc_nobias + h:fc_nobias
    zh = x:fc_nobias + h:fc_nobias
    c0 = zc:act_sigmoid
    f0 = zh:act_tanh
    d0 = f0:id + h:negate
    g0 = c0:id * d0:id
    s0 = h:id + g0:id
    # Eight searched highways, each from one earlier node. The search normalises every node
    # (b0 ... b8), as DARTS' search cell does; a trained network leaves them as they are.
    b0 = s0:search_norm
    n1 = b0:rnn
    b1 = n1:search_norm
    n2 = b0:rnn + b1:rnn
    b2 = n2:search_norm
    n3 = b0:rnn + b1:rnn + b2:rnn
    b3 = n3:search_norm
    n4 = b0:rnn + b1:rnn + b2:rnn + b3:rnn
    b4 = n4:search_norm
    n5 = b0:rnn + b1:rnn + b2:rnn + b3:rnn + b4:rnn
    b5 = n5:search_norm
    n6 = b0:rnn + b1:rnn + b2:rnn + b3:rnn + b4:rnn + b5:rnn
    b6 = n6:search_norm
    n7 = b0:rnn + b1:rnn + b2:rnn + b3:rnn + b4:rnn + b5:rnn + b6:rnn
    b7 = n7:search_norm
    n8 = b0:rnn + b1:rnn + b2:rnn + b3:rnn + b4:rnn + b5:rnn + b6:rnn + b7:rnn
    b8 = n8:search_norm
    keep 1 per node
    out mean(b1, b2, b3, b4, b5, b6, b7, b8)
    next h = out
}

network darts_rnn(vocab = 100, units = 32) {
    input tokens(vocab)
    stem word_embed(units)
    darts_rnn @ units
    head tied_decoder(vocab)
}
