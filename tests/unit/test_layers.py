"""Each attention block: shapes, gate ranges, and its equation checked by hand on tiny inputs."""

import math

import numpy as np
import pytest
import torch

from lxn.layers import CrossLayerFeatureFusion, FrequencyAwareCBAM, HierarchicalSESpatialAttention
from lxn.layers.fa_cbam import real_fft2


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------- CLFF

@pytest.mark.parametrize("mode,out_channels", [("concat", 24 + 40), ("add", 40)])
def test_clff_fuses_to_deep_resolution(mode, out_channels):
    clff = CrossLayerFeatureFusion(24, 40, mode=mode)
    out = clff(torch.randn(2, 24, 28, 28), torch.randn(2, 40, 7, 7))
    assert out.shape == (2, out_channels, 7, 7)
    gate = clff.channel_gate(clff.fuse(torch.randn(2, 24, 28, 28), torch.randn(2, 40, 7, 7)))
    assert gate.shape == (2, out_channels, 1, 1)
    assert gate.min() >= 0 and gate.max() <= 1


def test_clff_handles_non_integer_stride_ratio():
    out = CrossLayerFeatureFusion(8, 16)(torch.randn(1, 8, 13, 13), torch.randn(1, 16, 4, 4))
    assert out.shape == (1, 24, 4, 4)


def test_clff_equation_by_hand():
    clff = CrossLayerFeatureFusion(1, 1, mode="concat", reduction=1)
    f1 = torch.tensor([[1.0, 3.0, 0.0, 0.0], [5.0, 7.0, 0.0, 0.0], [2.0, 2.0, 4.0, 4.0], [2.0, 2.0, 4.0, 4.0]])
    f2 = torch.tensor([[1.0, -1.0], [2.0, 6.0]])
    se = clff.se
    with torch.no_grad():
        se.fc1.weight.zero_(); se.fc1.bias.zero_(); se.fc2.weight.zero_(); se.fc2.bias.zero_()
        se.fc1.weight[0, :, 0, 0] = torch.tensor([1.0, -2.0])   # W1 row 0
        se.fc1.weight[1, :, 0, 0] = torch.tensor([0.5, 1.0])    # W1 row 1
        se.fc1.bias[:2] = torch.tensor([0.25, -1.0])            # b1
        se.fc2.weight[:, :2, 0, 0] = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])  # W2
        se.fc2.bias[:] = torch.tensor([0.1, -0.2])              # b2
    out = clff(f1[None, None], f2[None, None])[0]

    # F1 reaches 2x2 by averaging 2x2 blocks: [[4, 0], [2, 4]]; F_fusion = [F1'; F2].
    f1_pooled = np.array([[4.0, 0.0], [2.0, 4.0]])
    z = [f1_pooled.mean(), np.mean([1, -1, 2, 6])]               # [2.5, 2.0]
    h = [max(0.0, 1 * z[0] - 2 * z[1] + 0.25), max(0.0, 0.5 * z[0] + 1 * z[1] - 1.0)]
    a = [sigmoid(1 * h[0] + 2 * h[1] + 0.1), sigmoid(-1 * h[0] + 0.5 * h[1] - 0.2)]
    expected = np.stack([a[0] * f1_pooled, a[1] * np.array([[1.0, -1.0], [2.0, 6.0]])])
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-6)


def test_clff_rejects_unknown_mode():
    with pytest.raises(ValueError, match="concat"):
        CrossLayerFeatureFusion(4, 4, mode="mul")


# ---------------------------------------------------------------- HSE-SAB

@pytest.mark.parametrize("size", [3, 7, 16])
@pytest.mark.parametrize("gate,low", [("paper", 0.5), ("sigmoid", 0.0)])
def test_hse_sab_shapes_and_gate_ranges(size, gate, low):
    block = HierarchicalSESpatialAttention(32, gate=gate)
    x = torch.randn(2, 32, size, size) * 3
    assert block(x).shape == x.shape
    channel = block.channel_gate(x)
    spatial = block.spatial_gate(x)
    assert channel.shape == (2, 32, 1, 1) and spatial.shape == (2, 1, size, size)
    assert channel.min() >= low and channel.max() <= 1
    assert spatial.min() >= 0 and spatial.max() <= 1


def test_hse_sab_paper_gate_cannot_go_below_half():
    block = HierarchicalSESpatialAttention(16, gate="paper")
    with torch.no_grad():
        block.fc2.weight.fill_(-10.0)  # drives the excitation far negative
    assert torch.all(block.channel_gate(torch.rand(1, 16, 5, 5) + 1) == 0.5)


def test_hse_sab_pooled_descriptor_is_mean_max_min_local():
    """F_pooled = [GAP; GMP; GMinP; LAP_2x2], channel-major within each slot, on a hand-made map
    whose four statistics all differ (so no pooling can stand in for another)."""
    block = HierarchicalSESpatialAttention(2, reduction=1, local_size=2)
    x = torch.tensor(
        [
            [[1.0, 2.0, 9.0], [4.0, 0.0, 6.0], [7.0, 8.0, 3.0]],
            [[-5.0, 1.0, 0.0], [2.0, 4.0, -3.0], [0.0, 1.0, 12.0]],
        ]
    )[None]
    xs = x[0].numpy()
    mean = xs.mean(axis=(1, 2))                     # [4.444, 1.333]
    maximum = xs.max(axis=(1, 2))                   # [9, 12]
    minimum = xs.min(axis=(1, 2))                   # [0, -5]
    # adaptive 3 -> 2 average pooling: cells cover rows/cols [0:2] and [1:3]
    local = np.array([[xs[c][r:r + 2, q:q + 2].mean() for r in (0, 1) for q in (0, 1)] for c in (0, 1)])
    expected = np.concatenate([mean, maximum, minimum, local.reshape(-1)])
    assert len({*mean, *maximum, *minimum}) == 6
    np.testing.assert_allclose(block.pooled(x)[0].detach().numpy(), expected, rtol=1e-6)
    # a subset keeps the same order and meaning
    only = HierarchicalSESpatialAttention(2, reduction=1, poolings=("min", "max"))
    np.testing.assert_allclose(only.pooled(x)[0].numpy(), np.concatenate([maximum, minimum]), rtol=1e-6)


def test_hse_sab_min_pooling_reaches_the_output():
    """Only the min slot feeds the excitation, with a weight that keeps it positive through both
    ReLUs: the output must move exactly as sigmoid(w * min) says."""
    block = HierarchicalSESpatialAttention(1, reduction=1, poolings=("avg", "max", "min"), gate="paper")
    with torch.no_grad():
        block.fc1.weight.zero_(); block.fc2.weight.zero_(); block.spatial.weight.zero_(); block.spatial.bias.zero_()
        block.fc1.weight[0, 2] = -1.0   # hidden 0 <- -min (min is negative below, so positive)
        block.fc2.weight[0, 0] = 1.0
    x = torch.tensor([[[2.0, -3.0], [5.0, 1.0]]])[None]
    out = block(x)[0, 0].detach().numpy()
    gate = sigmoid(max(0.0, 3.0))   # -min = 3; mean (1.25) or max (5) would give other gates
    np.testing.assert_allclose(out, x[0, 0].numpy() * gate * 0.5, rtol=1e-6)  # spatial gate sigmoid(0)


def test_hse_sab_equation_by_hand():
    block = HierarchicalSESpatialAttention(2, reduction=1, local_size=2, gate="paper")
    x = torch.tensor(
        [
            [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]],
            [[0.0, -1.0, 0.0], [2.0, 0.0, -3.0], [0.0, 1.0, 0.0]],
        ]
    )[None]
    descriptors = block.fc1.in_features
    assert descriptors == 2 * (3 + 4)
    with torch.no_grad():
        block.fc1.weight.zero_(); block.fc2.weight.zero_()
        block.fc1.weight[0, 0] = 1.0     # hidden 0 <- GAP of channel 0
        block.fc1.weight[1, 5] = -1.0    # hidden 1 <- min of channel 1 (order: avg, max, min, local)
        block.fc1.weight[2, 6] = 0.5     # hidden 2 <- local pool, channel 0, cell (0, 0)
        block.fc2.weight[0, 0] = 1.0
        block.fc2.weight[1, 1] = 1.0
        block.fc2.weight[1, 2] = -3.0    # makes excitation 1 negative: the paper's outer ReLU clips it
        block.spatial.weight[0, :, 0, 0] = torch.tensor([0.1, -0.2])
        block.spatial.bias.fill_(0.05)
    out = block(x)[0].detach().numpy()

    xs = x[0].numpy()
    gap0 = xs[0].mean()                        # 5
    min1 = xs[1].min()                         # -3
    local00 = xs[0][0:2, 0:2].mean()           # adaptive 3 -> 2 pooling: rows/cols [0:2] then [1:3]
    h = [max(0, gap0), max(0, -min1), max(0, 0.5 * local00)]
    excite = [max(0, h[0]), max(0, h[1] - 3 * h[2])]
    assert h[1] - 3 * h[2] < 0
    gate = np.array([sigmoid(e) for e in excite])[:, None, None]
    spatial = 1 / (1 + np.exp(-(0.1 * xs[0] - 0.2 * xs[1] + 0.05)))
    np.testing.assert_allclose(out, xs * gate * spatial[None], rtol=1e-5)


def test_hse_sab_rejects_unknown_pooling():
    with pytest.raises(ValueError, match="poolings"):
        HierarchicalSESpatialAttention(8, poolings=("avg", "median"))


# ---------------------------------------------------------------- FA-CBAM

@pytest.mark.parametrize("size", [3, 7, 16])
def test_fa_cbam_shapes_and_gate_ranges(size):
    block = FrequencyAwareCBAM(32)
    x = torch.randn(2, 32, size, size) * 3
    assert block(x).shape == x.shape
    refined = block.channel_gate(x) * x
    for gate, shape in [
        (block.channel_gate(x), (2, 32, 1, 1)),
        (block.spatial_gate(refined), (2, 1, size, size)),
        (block.fused_gate(x, refined), (2, 1, size, size)),
    ]:
        assert gate.shape == shape
        assert gate.min() >= 0 and gate.max() <= 1


def _direct_real_dft2(x: np.ndarray) -> np.ndarray:
    """Re(DFT2) by its definition, orthonormal: sum_mn x[m, n] cos(2 pi (km/M + ln/N)) / sqrt(MN)."""
    m_size, n_size = x.shape
    out = np.zeros_like(x, dtype=np.float64)
    for k in range(m_size):
        for l in range(n_size):
            for m in range(m_size):
                for n in range(n_size):
                    out[k, l] += x[m, n] * math.cos(2 * math.pi * (k * m / m_size + l * n / n_size))
    return out / math.sqrt(m_size * n_size)


def test_real_fft2_matches_direct_dft():
    x = torch.randn(2, 3, 5, 4)
    got = real_fft2(x).numpy()
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(got[b, c], _direct_real_dft2(x[b, c].double().numpy()), atol=1e-5)


def test_real_fft2_keeps_dtype():
    assert real_fft2(torch.randn(1, 2, 7, 7, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_fa_cbam_frequency_branch_is_conv_of_real_fft():
    """F_f' = conv(Re(FFT(F))) in the paper's order, against the block's commuted computation."""
    block = FrequencyAwareCBAM(6, freq_channels=2)
    x = torch.randn(1, 6, 7, 7)
    spectrum = torch.tensor(
        np.stack([_direct_real_dft2(x[0, c].double().numpy()) for c in range(6)]), dtype=torch.float32
    )[None]
    expected = torch.nn.functional.conv2d(spectrum, block.freq.weight)
    torch.testing.assert_close(block.frequency_features(x), expected, atol=1e-5, rtol=1e-4)


def test_fa_cbam_equation_by_hand():
    block = FrequencyAwareCBAM(2, reduction=1)
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[-1.0, 0.0], [0.0, 5.0]]])[None]
    hidden = block.mlp[0].out_features
    with torch.no_grad():
        for p in block.parameters():
            p.zero_()
        block.mlp[0].weight[0] = torch.tensor([1.0, 0.0])   # hidden 0 = channel 0 descriptor
        block.mlp[2].weight[:, 0] = torch.tensor([0.5, -0.5])
        block.spatial.weight[0, 0, 3, 3] = 1.0               # centre tap on mean_c
        block.spatial.weight[0, 1, 3, 3] = -1.0              # centre tap on max_c
        block.freq.weight[0, 1] = 1.0                        # F_f' = Re(FFT2(channel 1))
        block.fusion.weight[0, 0, 1, 1] = 2.0                # centre tap on M_s
        block.fusion.weight[0, 1, 1, 1] = 1.0                # centre tap on F_f'
    assert hidden >= 1
    out = block(x)[0].detach().numpy()

    xs = x[0].numpy()
    d_avg, d_max = xs[0].mean(), xs[0].max()                 # MLP(v) = [0.5, -0.5] * relu(v[0])
    mc = np.array([sigmoid(0.5 * d_avg + 0.5 * d_max), sigmoid(-0.5 * d_avg - 0.5 * d_max)])
    fc = xs * mc[:, None, None]
    ms = 1 / (1 + np.exp(-(fc.mean(0) - fc.max(0))))
    ff = _direct_real_dft2(xs[1].astype(np.float64))
    msf = 1 / (1 + np.exp(-(2 * ms + ff)))
    np.testing.assert_allclose(out, msf[None] * fc, rtol=1e-5, atol=1e-6)



def test_dct2_is_the_orthonormal_dct_ii():
    import scipy.fft

    from lxn.layers.fa_cbam import dct2

    x = torch.randn(2, 3, 7, 5)
    expected = scipy.fft.dctn(x.double().numpy(), type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(dct2(x).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("spectrum", ["real_fft", "centred_fft", "dct"])
def test_fa_cbam_frequency_branch_commutes_with_the_1x1_conv_for_every_spectrum(spectrum):
    """conv(T(F)) in the paper's order, with T computed independently of the block's code."""
    import scipy.fft

    block = FrequencyAwareCBAM(6, freq_channels=2, spectrum=spectrum)
    x = torch.randn(1, 6, 7, 7)
    maps = x[0].double().numpy()
    if spectrum == "dct":
        transformed = scipy.fft.dctn(maps, type=2, norm="ortho", axes=(-2, -1))
    else:
        transformed = np.stack([_direct_real_dft2(m) for m in maps])
        if spectrum == "centred_fft":
            transformed = np.fft.fftshift(transformed, axes=(-2, -1))
    expected = torch.nn.functional.conv2d(torch.tensor(transformed, dtype=torch.float32)[None], block.freq.weight)
    torch.testing.assert_close(block.frequency_features(x), expected, atol=1e-5, rtol=1e-4)


def test_the_centred_spectrum_puts_dc_in_the_middle():
    from lxn.layers.fa_cbam import _spectrum

    x = torch.ones(1, 1, 7, 7)  # all energy at DC
    centred = _spectrum(x, "centred_fft")[0, 0]
    assert centred[3, 3] == pytest.approx(7.0) and centred.abs().sum() == pytest.approx(7.0)
    assert _spectrum(x, "real_fft")[0, 0, 0, 0] == pytest.approx(7.0)


def test_clff_space_to_depth_keeps_every_early_pixel():
    clff = CrossLayerFeatureFusion(1, 1, mode="concat", early="space_to_depth", ratio=2)
    with torch.no_grad():  # the 1x1 conv reads one of the four pixels of each 2x2 block
        clff.reduce[1].weight.zero_()
        clff.reduce[1].weight[0, 3] = 1.0
        clff.reduce[2].eval()
    clff.eval()
    early = torch.arange(16.0).view(1, 1, 4, 4)
    down = clff.bring_down(early, torch.Size([2, 2]))
    bn = clff.reduce[2]
    scale = 1 / torch.sqrt(bn.running_var + bn.eps)
    # the bottom-right pixel of each block survives, which a 2x2 average would blur away
    torch.testing.assert_close(down[0, 0], early[0, 0, 1::2, 1::2] * scale)
    assert CrossLayerFeatureFusion(1, 1, early="avgpool").bring_down(early, torch.Size([2, 2]))[0, 0, 0, 0] == 2.5
