"""MMPretrain's VisualizationHook for 1-channel and small images too."""
from mmpretrain.engine.hooks import VisualizationHook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class GrayAwareVisualizationHook(VisualizationHook):
    """:class:`mmpretrain.engine.hooks.VisualizationHook` that draws
    1-channel images in gray and enlarges small ones.

    MMPretrain's hook hands the input tensor to the visualizer as it is; a
    1-channel image is then drawn with a false-colour map, and on a 28 px
    image the label text covers everything. Here 1-channel images are
    repeated to three channels, and images whose shorter side is below
    ``min_size`` are drawn at ``min_size`` unless ``resize`` or
    ``rescale_factor`` is given. Colour images are drawn as by the base
    class.

    Args:
        min_size (int): Shorter side below which images are enlarged to
            it. Defaults to 224.
        **kwargs: The arguments of MMPretrain's ``VisualizationHook``
            (``enable``, ``interval``, ``out_dir``, ``show`` and the
            visualizer's ``resize``, ``draw_score``...).

    Example:
        >>> default_hooks = dict(visualization=dict(
        ...     type='GrayAwareVisualizationHook', enable=True,
        ...     out_dir='vis'))
    """

    def __init__(self, min_size: int = 224, **kwargs) -> None:
        super().__init__(**kwargs)
        self.min_size = min_size

    def _draw_samples(self, batch_idx: int, data_batch: dict, data_samples,
                      step: int = 0) -> None:
        if not self.enable:
            return
        inputs = data_batch['inputs']
        if isinstance(inputs, (list, tuple)) and inputs and isinstance(
                inputs[0], (list, tuple)):
            # test-time augmentation: one list of images per view, and one
            # merged prediction per image; the first view is drawn (the
            # unflipped image in our configs' tta_pipeline)
            inputs = inputs[0]
        images = [
            img.expand(3, -1, -1) if img.shape[0] == 1 else img
            for img in inputs
        ]
        enlarge = bool(images) and min(
            images[0].shape[-2:]) < self.min_size and not (
                {'resize', 'rescale_factor'} & set(self.draw_args))
        if enlarge:
            self.draw_args['resize'] = self.min_size
        try:
            super()._draw_samples(batch_idx, {
                **data_batch, 'inputs': images
            }, data_samples, step)
        finally:
            if enlarge:
                del self.draw_args['resize']
