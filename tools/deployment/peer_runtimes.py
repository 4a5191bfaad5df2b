"""What a CPU user would ship instead of packed Bi-Real-18, ready to time.

Used by ``benchmark_binary.py``. Every peer is built from random weights on
this machine (nothing is downloaded): torchvision's ResNet-18 and
MobileNetV2 exported to ONNX, run by onnxruntime and OpenVINO in fp32,
OpenVINO's default precision, and int8 (onnxruntime static QDQ quantisation
with per-channel weights; OpenVINO through ``nncf.quantize``), calibrated on
random inputs. Random weights change neither the graph nor the latency; the
accuracy column is therefore the *published* ImageNet top-1 of each model,
not measured here.

The runtimes are the optional ``bench`` extra (``pip install
mmbireal[bench]``). A peer whose runtime is missing or fails to build is
skipped with a note, never replaced by something else.
"""
import importlib
import os
import os.path as osp
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

# Published ImageNet-1k top-1 (%), NOT measured here. The int8 rows quote the
# float model's figure: quantisation usually costs a fraction of a point,
# which this benchmark does not measure either.
PUBLISHED_TOP1 = {
    'resnet18': (69.758, 'torchvision docs, ResNet18_Weights.IMAGENET1K_V1'),
    'mobilenet_v2': (71.878,
                     'torchvision docs, MobileNet_V2_Weights.IMAGENET1K_V1'),
    'bireal18': (56.4, 'Liu et al., Bi-Real Net, ECCV 2018, Table 4'),
}
CALIBRATION_SAMPLES = 8


class Peer(NamedTuple):
    """One row of the peer table.

    ``build(batch)`` returns a no-argument callable that runs one forward
    pass on a fixed input of that batch size.
    """
    name: str
    runtime: str
    model: str  # key of PUBLISHED_TOP1
    size_bytes: int
    build: Callable[[int], Callable[[], object]]
    check: Optional[str] = None  # numerical check against eager PyTorch


class Skipped(NamedTuple):
    name: str
    reason: str


def _runtime(module: str):
    """The imported runtime, or None if it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _version(module) -> str:
    return getattr(module, '__version__', '?')


def torchvision_model(arch: str) -> nn.Module:
    """torchvision's ``arch`` with random weights (seeded), eval mode."""
    import torchvision
    torch.manual_seed(0)
    return getattr(torchvision.models, arch)(weights=None).eval()


def _export_onnx(model: nn.Module, path: str, size: int) -> None:
    # The TorchScript exporter needs no onnxscript; batch is a dynamic axis.
    torch.onnx.export(
        model, (torch.randn(1, 3, size, size), ), path, dynamo=False,
        input_names=['input'], output_names=['logits'],
        dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}},
        opset_version=17)


def _calibration(size: int) -> List[np.ndarray]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(1, 3, size, size, generator=gen).numpy()
            for _ in range(CALIBRATION_SAMPLES)]


def random_inputs(batch: int, size: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(2)
    return torch.randn(batch, 3, size, size, generator=gen).numpy()


def _max_rel_error(out: np.ndarray, ref: np.ndarray) -> float:
    span = float(ref.max() - ref.min()) or 1.0
    return float(np.abs(out - ref).max()) / span


def _check_text(run: Callable[[np.ndarray], np.ndarray], model: nn.Module,
                size: int) -> str:
    x = random_inputs(2, size)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    err = _max_rel_error(run(x), ref)
    verdict = 'ok' if err <= 1e-4 else 'MISMATCH'
    return f'max |diff| / logit range vs eager PyTorch: {err:.1e} ({verdict})'


def _file_bytes(*paths: str) -> int:
    return sum(osp.getsize(p) for p in paths)


class PeerFactory:
    """Builds the peer rows for one input size and thread count.

    Args:
        workdir: Where the ONNX / OpenVINO files go (a temporary dir; files
            found there are reused, so one dir serves every thread count).
        size: Input height and width.
        threads: Intra-op threads for every runtime.
    """

    def __init__(self, workdir: str, size: int, threads: int) -> None:
        self.workdir, self.size, self.threads = workdir, size, threads
        self.ort = _runtime('onnxruntime')
        self.ov = _runtime('openvino')
        self.nncf = _runtime('nncf') if self.ov is not None else None
        self._models: Dict[str, nn.Module] = {}

    def _path(self, name: str) -> str:
        return osp.join(self.workdir, name)

    def model(self, arch: str) -> nn.Module:
        if arch not in self._models:
            self._models[arch] = torchvision_model(arch)
        return self._models[arch]

    def onnx(self, arch: str) -> str:
        path = self._path(f'{arch}.onnx')
        if not osp.exists(path):
            _export_onnx(self.model(arch), path, self.size)
        return path

    # -- eager PyTorch -------------------------------------------------------
    def torch_fp32(self, arch: str) -> Peer:
        model = self.model(arch)

        def build(batch: int) -> Callable[[], object]:
            x = torch.from_numpy(random_inputs(batch, self.size))
            return lambda: model(x)

        size = sum(p.numel() * 4 for p in model.state_dict().values()
                   if p.is_floating_point())
        return Peer(f'{_pretty(arch)} fp32', f'PyTorch {torch.__version__} '
                    'eager', arch, size, build)

    # -- onnxruntime ---------------------------------------------------------
    def _ort_session(self, path: str):
        opts = self.ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = (
            self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        return self.ort.InferenceSession(
            path, opts, providers=['CPUExecutionProvider'])

    def _ort_peer(self, name: str, arch: str, path: str,
                  check: bool) -> Peer:
        sess = self._ort_session(path)

        def run(x: np.ndarray) -> np.ndarray:
            return sess.run(None, {'input': x})[0]

        def build(batch: int) -> Callable[[], object]:
            x = random_inputs(batch, self.size)
            return lambda: run(x)

        text = _check_text(run, self.model(arch), self.size) if check else None
        return Peer(name, f'onnxruntime {_version(self.ort)}', arch,
                    _file_bytes(path), build, text)

    def ort_fp32(self, arch: str) -> Peer:
        return self._ort_peer(f'{_pretty(arch)} fp32', arch, self.onnx(arch),
                              check=True)

    def ort_int8(self, arch: str) -> Peer:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import (
            quant_pre_process,
        )

        class Reader(CalibrationDataReader):

            def __init__(self, samples: List[np.ndarray]) -> None:
                self.samples = iter(samples)

            def get_next(self) -> Optional[dict]:
                x = next(self.samples, None)
                return None if x is None else {'input': x}

        prep = self._path(f'{arch}.prep.onnx')
        out = self._path(f'{arch}.int8.onnx')
        if not osp.exists(out):  # kept for the next thread count
            quant_pre_process(self.onnx(arch), prep)
            # u8 activations x s8 weights: the operands of VNNI's vpdpbusd
            quantize_static(prep, out, Reader(_calibration(self.size)),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
        return self._ort_peer(f'{_pretty(arch)} int8 (static QDQ, '
                              'per-channel)', arch, out, check=False)

    # -- OpenVINO ------------------------------------------------------------
    def _ov_peer(self, name: str, arch: str, make_model: Callable[[], object],
                 config: dict, check: bool) -> Peer:
        ov = self.ov
        core = ov.Core()
        config = {'INFERENCE_NUM_THREADS': self.threads,
                  'NUM_STREAMS': 1, 'PERFORMANCE_HINT': 'LATENCY', **config}
        xml = self._path(''.join(c if c.isalnum() else '_'
                                 for c in name) + '.xml')
        if not osp.exists(xml):  # kept for the next thread count
            ov.save_model(make_model(), xml, compress_to_fp16=False)
        compiled: Dict[int, object] = {}

        def request(batch: int):
            if batch not in compiled:
                m = core.read_model(xml)
                m.reshape([batch, 3, self.size, self.size])
                compiled[batch] = core.compile_model(
                    m, 'CPU', config).create_infer_request()
            return compiled[batch]

        def run(x: np.ndarray) -> np.ndarray:
            req = request(x.shape[0])
            req.infer([x])
            return req.get_output_tensor(0).data.copy()

        def build(batch: int) -> Callable[[], object]:
            x = random_inputs(batch, self.size)
            req = request(batch)
            return lambda: req.infer([x])

        text = _check_text(run, self.model(arch), self.size) if check else None
        size = _file_bytes(xml, xml[:-4] + '.bin')
        return Peer(name, f'OpenVINO {ov.get_version().split("-")[0]}', arch,
                    size, build, text)

    def _ov_read(self, arch: str):
        return self.ov.Core().read_model(self.onnx(arch))

    def ov_fp32(self, arch: str) -> Peer:
        return self._ov_peer(f'{_pretty(arch)} fp32', arch,
                             lambda: self._ov_read(arch),
                             {'INFERENCE_PRECISION_HINT': 'f32'}, check=True)

    def ov_default(self, arch: str) -> Peer:
        precision = self.ov.Core().get_property('CPU',
                                                'INFERENCE_PRECISION_HINT')
        name = getattr(precision, 'get_type_name', lambda: precision)()
        return self._ov_peer(f'{_pretty(arch)} default precision ({name})',
                             arch, lambda: self._ov_read(arch), {},
                             check=False)

    def ov_int8(self, arch: str) -> Peer:

        def quantize():
            return self.nncf.quantize(
                self._ov_read(arch), self.nncf.Dataset(
                    _calibration(self.size)),
                subset_size=CALIBRATION_SAMPLES)

        return self._ov_peer(f'{_pretty(arch)} int8 (nncf.quantize)', arch,
                             quantize, {}, check=False)


def _pretty(arch: str) -> str:
    return {'resnet18': 'ResNet-18', 'mobilenet_v2': 'MobileNetV2'}[arch]


# (method, arch, the runtime attribute it needs, that runtime's package,
# what the row is, for the note when it is skipped)
PEER_ROWS = (
    ('torch_fp32', 'resnet18', None, None, 'fp32, eager PyTorch'),
    ('ort_fp32', 'resnet18', 'ort', 'onnxruntime', 'fp32, onnxruntime'),
    ('ov_fp32', 'resnet18', 'ov', 'openvino', 'fp32, OpenVINO'),
    ('ov_default', 'resnet18', 'ov', 'openvino',
     'default precision, OpenVINO'),
    ('ort_int8', 'resnet18', 'ort', 'onnxruntime',
     'int8 static QDQ, onnxruntime'),
    ('ov_int8', 'resnet18', 'nncf', 'nncf', 'int8 NNCF, OpenVINO'),
    ('ort_int8', 'mobilenet_v2', 'ort', 'onnxruntime',
     'int8 static QDQ, onnxruntime'),
)


def build_peers(workdir: str, size: int,
                threads: int) -> Tuple[List[Peer], List[Skipped]]:
    """Every peer row that this environment can build, and the others with
    the reason they were skipped."""
    factory = PeerFactory(workdir, size, threads)
    peers, skipped = [], []
    for method, arch, runtime, package, what in PEER_ROWS:
        label = f'{_pretty(arch)} {what}'
        if runtime is not None and getattr(factory, runtime) is None:
            skipped.append(Skipped(label, f'{package} is not installed '
                                   '(pip install mmbireal[bench])'))
            continue
        try:
            peers.append(getattr(factory, method)(arch))
        except Exception as e:  # noqa: BLE001 - a peer never stops the run
            first = str(e).strip().splitlines()
            skipped.append(Skipped(label, f'{type(e).__name__}: '
                                   f'{first[0] if first else ""}'[:200]))
    return peers, skipped


def quiet_runtimes() -> None:
    """Keep the runtimes' progress bars and info logs out of the table."""
    os.environ.setdefault('ORT_LOGGING_LEVEL', '3')
    import logging
    logging.getLogger('nncf').setLevel(logging.ERROR)
    ort = _runtime('onnxruntime')
    if ort is not None:
        ort.set_default_logger_severity(3)
