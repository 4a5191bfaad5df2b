"""MMPretrain's inference APIs on image files with the 1-channel
Fashion-MNIST configs."""
import cv2
import numpy as np
import pytest
import torch
from helpers import tiny_random_checkpoint
from mmpretrain import (
    ImageClassificationInferencer,
    inference_model,
)

from mmbireal.datasets import ToGrayscale


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp('inference')
    return (*tiny_random_checkpoint(root), root)


def test_inferencer_on_grayscale_and_colour_files(tiny_model):
    config, checkpoint, root = tiny_model
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (28, 28), np.uint8)
    colour = rng.integers(0, 256, (28, 28, 3), np.uint8)
    cv2.imwrite(str(root / 'gray.png'), gray)
    cv2.imwrite(str(root / 'colour.png'), colour)
    inferencer = ImageClassificationInferencer(
        config, pretrained=checkpoint, device='cpu')
    from_file, from_array, from_colour = (
        inferencer(x)[0]
        for x in (str(root / 'gray.png'), gray, str(root / 'colour.png')))
    assert len(from_file['pred_scores']) == 10
    # the grayscale file gives what its pixels give: read in colour, it is
    # turned back into exactly the same 1-channel image
    assert np.array_equal(from_file['pred_scores'], from_array['pred_scores'])
    # a colour file is classified as its gray version
    as_gray = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(from_colour['pred_scores'],
                          inferencer(as_gray)[0]['pred_scores'])
    assert not np.array_equal(from_colour['pred_scores'],
                              from_file['pred_scores'])


def test_inference_model_on_a_grayscale_file(tmp_path):
    """mmpretrain.inference_model with the zoo's name (random weights: the
    same seed builds the same model)."""
    image = np.random.default_rng(2).integers(0, 256, (28, 28), np.uint8)
    cv2.imwrite(str(tmp_path / 'gray.png'), image)
    results = []
    for source in (str(tmp_path / 'gray.png'), image):
        torch.manual_seed(0)
        results.append(inference_model('bireal18_1xb64-quick_fmnist',
                                       source, device='cpu'))
    assert len(results[0]['pred_scores']) == 10
    assert np.array_equal(results[0]['pred_scores'],
                          results[1]['pred_scores'])


def test_to_grayscale_keeps_one_channel_images():
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (5, 7), np.uint8)
    assert ToGrayscale()(dict(img=gray))['img'] is gray
    three = np.repeat(gray[..., None], 3, axis=2)
    assert np.array_equal(ToGrayscale()(dict(img=three))['img'], gray)
    four = np.concatenate([three, np.full((5, 7, 1), 255, np.uint8)], 2)
    assert np.array_equal(ToGrayscale()(dict(img=four))['img'], gray)
