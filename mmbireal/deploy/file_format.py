"""The packed 1-bit Bi-Real file: its name, version and key schema.

Shared by the writer (:mod:`.export`) and the reader
(:mod:`.packed_model`), so the reader never imports the training-side
writer. The file is a plain ``torch.save`` of dicts, lists, ints, strings
and tensors, so :func:`mmbireal.utils.load_checkpoint_file` reads it in
weights-only mode with no extra allow-list:

``format``/``version``
    :data:`FORMAT` / the lowest of :data:`VERSIONS` that has every key the
    file holds (:func:`version_of`), so a file without the newer keys reads
    in older code too.
``arch``
    Enough to rebuild the network without the config: ``depth``,
    ``stem_type``, ``in_channels``, ``stem_channels``, ``widths``,
    ``strides``, ``blocks`` (per stage), ``convs_per_shortcut``,
    ``num_classes``; from version 2 ``padding`` (the backbone's padding
    mode, :mod:`mmbireal.models.padding`), written only when it is not
    ``'symmetric'``, which a file without it has.
``weights``
    Binary 3x3 convs (:func:`conv_key`, ``layer{i}.{j}.conv{k}.*``):
    ``bits`` int64 ``(C_out, 3, 3, ceil(C_in / 64))`` -- 1 bit per weight,
    packed along input channels, bit ``j`` of word ``k`` = input channel
    ``64k + j``, bit 1 = +1 (``W >= 0``); ``scale``/``shift`` fp32
    ``(C_out,)``: the following BN in eval mode with the weight scale
    ``alpha = mean|W|`` folded in, ``BN(alpha * y) = y * (alpha * g /
    sqrt(v + eps)) + (b - m * g / sqrt(v + eps))``, where the weight
    binarizer is ``scaled``; with ``weight_binarizer='sign'`` (after BN
    retrain) there is no alpha.
    Real-valued layers in fp32: ``stem.weight`` and ``stem.scale/shift``
    (its BN), ``layer{i}.0.downsample.weight`` ``(C_out, C_in)`` and
    ``.scale/.shift`` (:func:`downsample_key`), ``fc.weight``/``fc.bias``.
ReActNet's parts (``version`` 2, :func:`version_of`; files without them
    stay version 1, unchanged): ``arch['sign_bias']`` (bool) gives every
    binary conv a ``conv{k}.sign_bias`` fp32 ``(C_in,)``, the RSign bias
    ``b`` of its input (the conv sees ``sign(x + b)``); ``arch['block_act']``
    (``'rprelu'`` or None) gives every block ``block_act.shift_in``,
    ``.slope``, ``.shift_out`` fp32 ``(C_out,)`` (:func:`block_act_key`),
    applied after the residual add: ``prelu(v + shift_in) + shift_out``.
``meta``
    Strings, numbers and lists of them only: binarizer names, the data
    preprocessor's ``mean``/``std`` and ``to_rgb``, the config's test
    pipeline as ``resize_short`` (the ``ResizeEdge`` short side, or None)
    and ``crop_size`` (``[H, W]`` of the network input), or both None and
    ``unreplayed_step`` (the pipeline step images would not get, in words),
    and the dataset's ``classes``. The forward pass takes normalised
    tensors (as ``mode='tensor'`` does); only
    :meth:`PackedBiRealNet.classify` applies the preprocessing. Files
    written before the preprocessing and class keys existed still load:
    their missing keys read as None.
"""

FORMAT = 'mmbireal-packed-bireal'
#: versions this code reads; 2: files with keys a version-1 reader would
#: ignore (``arch['padding']``, ReActNet's parts); all others stay 1
VERSIONS = (1, 2)
#: ``arch['block_act']`` values -> the fields of their weights
BLOCK_ACTS = {'rprelu': ('shift_in', 'slope', 'shift_out')}
# meta keys an image call needs (:meth:`PackedBiRealNet.classify`)
PREPROCESS_KEYS = ('mean', 'std', 'crop_size')


def version_of(arch: dict) -> int:
    """The version a file with this ``arch`` is written as."""
    return 2 if any(k in arch for k in ('padding', 'sign_bias',
                                        'block_act')) else 1


def block_key(stage: int, block: int) -> str:
    """Prefix of block ``block`` (0-based) of stage ``stage`` (0-based)."""
    return f'layer{stage + 1}.{block}'


def conv_key(stage: int, block: int, conv: int, field: str) -> str:
    """``bits``/``scale``/``shift`` of binary conv ``conv`` of a block."""
    return f'{block_key(stage, block)}.conv{conv}.{field}'


def block_act_key(stage: int, block: int, field: str) -> str:
    """A field of a block's activation after the residual add (version 2:
    :data:`BLOCK_ACTS`)."""
    return f'{block_key(stage, block)}.block_act.{field}'


def downsample_key(stage: int, block: int, field: str) -> str:
    """``weight``/``scale``/``shift`` of a block's 1x1 downsample."""
    return f'{block_key(stage, block)}.downsample.{field}'
