"""Dense networks the dsl and compiler tests share."""

# A small U-Net: two levels down, two up through transposed convolutions, skips read by name.
UNET = """
op double_conv = conv(3, stride = stride) -> bn -> relu -> conv(3) -> bn -> relu
op up_conv with resampling = deconv(2, stride = up)
op seg_out with per_pixel = conv(1, bias = 1)

cell decoder(deep:up_conv, skip) {
    n1 = concat(deep:skip_connect, skip:skip_connect)
    n2 = n1:double_conv
    out n2
}

network unet(C = 4, classes = 3, size = 32) {
    input(3, size)
    enc1 = double_conv(C)
    enc2 = double_conv(2C, stride = 2)
    bottom = double_conv(4C, stride = 2)
    dec2 = decoder @ 2C from bottom, enc2
    decoder @ C from dec2, enc1
    head seg_out(classes)
}
"""


def unet(size: int = 32) -> str:
    """The U-Net's source at another input size."""
    return UNET.replace("size = 32", f"size = {size}")
