"""GrayAwareVisualizationHook hands MMPretrain's hook 3-channel images,
enlarged when small, and leaves its drawing arguments as they were."""
import pytest
import torch
from mmpretrain.engine.hooks import VisualizationHook
from mmpretrain.visualization import UniversalVisualizer

from mmbireal.engine.hooks.visualization_hook import (
    GrayAwareVisualizationHook,
)


@pytest.fixture
def drawn(monkeypatch):
    """What the base class's _draw_samples receives: (image shapes, a copy
    of the drawing arguments at that moment)."""
    UniversalVisualizer.get_instance('gray_aware_test')
    calls = []

    def record(self, batch_idx, data_batch, data_samples, step=0):
        calls.append(([tuple(i.shape) for i in data_batch['inputs']],
                      dict(self.draw_args)))

    monkeypatch.setattr(VisualizationHook, '_draw_samples', record)
    return calls


def gray(n=2, side=28):
    return [torch.zeros(1, side, side, dtype=torch.uint8)] * n


def test_small_gray_images_are_drawn_in_gray_at_min_size(drawn):
    hook = GrayAwareVisualizationHook(enable=True, min_size=224)
    hook._draw_samples(0, {'inputs': gray()}, [None, None])
    shapes, args = drawn[0]
    assert shapes == [(3, 28, 28)] * 2 and args['resize'] == 224
    assert 'resize' not in hook.draw_args  # this call's only


def test_a_resize_the_user_gave_is_kept(drawn):
    hook = GrayAwareVisualizationHook(enable=True, resize=112)
    hook._draw_samples(0, {'inputs': gray()}, [None, None])
    assert drawn[0][1]['resize'] == 112 and hook.draw_args['resize'] == 112


def test_large_and_colour_images_are_drawn_as_given(drawn):
    hook = GrayAwareVisualizationHook(enable=True)
    hook._draw_samples(0, {'inputs': [torch.zeros(3, 256, 256)]}, [None])
    shapes, args = drawn[0]
    assert shapes == [(3, 256, 256)] and 'resize' not in args


def test_test_time_augmentation_draws_the_first_view(drawn):
    hook = GrayAwareVisualizationHook(enable=True)
    views = [gray(side=28), [torch.ones(1, 30, 30)] * 2]
    hook._draw_samples(0, {'inputs': views}, [None, None])
    assert drawn[0][0] == [(3, 28, 28)] * 2


def test_a_failed_drawing_leaves_the_arguments_as_they_were(monkeypatch):
    UniversalVisualizer.get_instance('gray_aware_test_failure')

    def fail(*args, **kwargs):
        raise RuntimeError('disk full')

    monkeypatch.setattr(VisualizationHook, '_draw_samples', fail)
    hook = GrayAwareVisualizationHook(enable=True)
    with pytest.raises(RuntimeError):
        hook._draw_samples(0, {'inputs': gray()}, [None, None])
    assert 'resize' not in hook.draw_args


def test_a_disabled_hook_draws_nothing(drawn):
    GrayAwareVisualizationHook(enable=False)._draw_samples(
        0, {'inputs': gray()}, [None, None])
    assert drawn == []
