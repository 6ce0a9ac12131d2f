# The op library of sequences (docs/language.md, section 25), written in nasc's own language
# beside the prelude: the activations, the identity and a negation as ops for the edges of
# recurrent cells, dense layers, the embedding, the search-time normalisation of DARTS' recurrent
# nodes and the decoders of language models. Every space can use these ops; they are kept out of
# the op registry of image feature maps (`nasc.compiler.OPS`), and `get_op` builds them by name.

# Sigmoid: a gate on the edge of a recurrent cell, `i = zi:act_sigmoid`.
op act_sigmoid with sequence = sigmoid

# Tanh, on an edge.
op act_tanh with sequence = tanh

# ReLU, on an edge.
op act_relu with sequence = relu

# The input unchanged, on vectors and maps alike: the factors of a product node, `f:id * c:id`.
op id with sequence = identity

# The input negated: a sum node `d = a:id + b:negate` is the difference a - b.
op negate with sequence = neg

# In a search supernet, BatchNorm (not affine) of each step's features, as DARTS' recurrent search
# cell normalises every node; in a trained network, nothing.
op search_norm with sequence = if affine == 0 then bn1d else identity

# A dense layer with a bias on each step's features: an LSTM's or a GRU's W x + b.
op fc = dense

# A dense layer without a bias: the weights W of DARTS' recurrent cell.
op fc_nobias = dense(bias = 0)

# Token ids to vectors: a table of C_out features for each of the C_in tokens of the vocabulary.
op word_embed = embedding

# Scores per time step, a dense layer to C_out (the vocabulary): a language model's decoder.
op decoder with head = dense

# The decoder of a language model with tied weights (Press and Wolf, 2017; DARTS' recurrent
# networks): its weight is the network's embedding's, so it adds only a bias.
op tied_decoder with head, tied = dense
