"""Reference outputs of larq-zoo's own Keras Bi-Real Net (TensorFlow venv).

Runs in the venv that ``larq_zoo_check.sh`` creates (TensorFlow 2.15,
larq 0.14, larq-zoo 2.4), not in mmbireal's. Builds
``BiRealNetFactory(filters=..., weights=None)`` with its random (glorot)
weights, random BN gammas/betas and moving statistics taken from a few
training-mode passes on random images (so every BN normalises with
statistics of its own), and writes to OUT_DIR:

``birealnet_random.h5``
    ``model.save_weights`` of it: the layout of larq-zoo's release files.
``birealnet_random_logits.npz``
    ``general_inputs`` (NHWC float32, ``--size`` px) and ``clean_inputs``
    (``--clean-size`` px), each with the pre-softmax logits of the float32
    and the float64 model (``*_logits32``, ``*_logits64``); per input the
    smallest ``|pre-sign value|`` of the float64 model (``*_min_presign``,
    over the inputs of all binary convs) and the largest float32 rounding
    error of the pre-sign values, ``|float32 - float64|``
    (``*_presign_err``). The clean inputs are the candidates whose smallest
    pre-sign value is over 10 times that error: no sign there is decided
    by rounding.

Usage (inside the TensorFlow venv)::

    python larq_zoo_reference.py OUT_DIR [--filters 64] [--num-classes 1000]
"""
import argparse
import json
import os
import os.path as osp

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import larq
import larq_zoo
import numpy as np
import tensorflow as tf
from larq_zoo.literature.birealnet import BiRealNetFactory


def build(filters: int, num_classes: int, size: int) -> tf.keras.Model:
    return BiRealNetFactory(
        filters=filters,
        num_classes=num_classes,
        include_top=True,
        weights=None,
        input_shape=(size, size, 3)).build()


def probe(model: tf.keras.Model) -> tf.keras.Model:
    """The pre-softmax logits and the input of every binary conv."""
    dense = next(m for m in model.layers
             if isinstance(m, tf.keras.layers.Dense))
    convs = [m for m in model.layers
             if isinstance(m, larq.layers.QuantConv2D)]
    return tf.keras.Model(model.inputs,
                          [dense.output] + [c.input for c in convs])


def run(model: tf.keras.Model, x: np.ndarray):
    outs = probe(model)(x, training=False)
    logits = outs[0].numpy()
    presign = [o.numpy().reshape(len(x), -1) for o in outs[1:]]
    return logits, presign


def randomize(model: tf.keras.Model, rng: np.random.Generator,
              size: int) -> None:
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype('float32'))
            layer.beta.assign(rng.normal(0, 0.3, n).astype('float32'))
    # momentum 0.8: ten passes take the moving statistics close to those
    # of random images, layer after layer
    for _ in range(10):
        x = rng.normal(size=(4, size, size, 3)).astype('float32')
        model(x, training=True)


def outputs(model32, model64, x):
    logits32, pre32 = run(model32, x)
    logits64, pre64 = run(model64, x.astype('float64'))
    min_presign = np.min([np.abs(p).min(axis=1) for p in pre64], axis=0)
    err = np.max([np.abs(a - b).max(axis=1) for a, b in zip(pre32, pre64)],
                 axis=0)
    return logits32, logits64, min_presign, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir')
    parser.add_argument('--filters', type=int, default=64)
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--num-inputs', type=int, default=16)
    parser.add_argument('--clean-size', type=int, default=32)
    parser.add_argument('--candidates', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    tf.keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    h5 = osp.join(args.out_dir, 'birealnet_random.h5')

    model = build(args.filters, args.num_classes, args.size)
    randomize(model, rng, args.size)
    model.save_weights(h5)
    result = {}
    for kind, size, count in (('general', args.size, args.num_inputs),
                              ('clean', args.clean_size, args.candidates)):
        tf.keras.backend.set_floatx('float32')
        model32 = build(args.filters, args.num_classes, size)
        model32.load_weights(h5)
        tf.keras.backend.set_floatx('float64')
        model64 = build(args.filters, args.num_classes, size)
        model64.load_weights(h5)
        tf.keras.backend.set_floatx('float32')
        x = rng.normal(size=(count, size, size, 3)).astype('float32')
        logits32, logits64, min_presign, err = outputs(model32, model64, x)
        if kind == 'clean':
            keep = min_presign > 10 * err
            x, logits32, logits64 = x[keep], logits32[keep], logits64[keep]
            min_presign, err = min_presign[keep], err[keep]
        result.update({
            f'{kind}_inputs': x,
            f'{kind}_logits32': logits32,
            f'{kind}_logits64': logits64,
            f'{kind}_min_presign': min_presign,
            f'{kind}_presign_err': err,
        })
    npz = osp.join(args.out_dir, 'birealnet_random_logits.npz')
    np.savez_compressed(npz, **result)
    info = dict(
        filters=args.filters,
        num_classes=args.num_classes,
        seed=args.seed,
        tensorflow=tf.__version__,
        larq=larq.__version__,
        larq_zoo=larq_zoo.__version__,
        general=len(result['general_inputs']),
        clean=len(result['clean_inputs']),
        candidates=args.candidates)
    with open(osp.join(args.out_dir, 'birealnet_random.json'), 'w') as f:
        json.dump(info, f, indent=1)
    print(f'[larq_zoo_reference] {h5} and {npz}: {json.dumps(info)}')


if __name__ == '__main__':
    main()
