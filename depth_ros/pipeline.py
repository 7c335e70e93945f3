"""The per-frame depth pipeline: one path for the node, ``depth-ros infer`` and evaluation.

::

    Image / CompressedImage + CameraInfo (message objects: rclpy or rosbags, duck-typed)
      -> decode      (msgconv: RGB (H, W, 3) uint8 + CameraModel; untrusted input checked)
      -> rectify     (core.distortion: when D != 0 and rectify is auto)
      -> preprocess  (core.preprocess: the aspect window, core.aspect: crop / pad / stretch to
                      the trained aspect; then the network input of the ModelSpec)
      -> infer       (the backend; timed)
      -> postprocess (core.postprocess on the window's camera: metric depth float32 m, NaN
                      invalid, scale policy incl. the focal ratio of metric models; pasted back
                      at camera resolution (H, W), cropped-off bands NaN)
      -> cloud       (core.pointcloud: organized xyz / xyzrgb, optional)

ROS-free. :class:`FramePipeline` checks the model once at construction (a depth kind, and the
output contract dry run of :func:`~depth_ros.inference.backend.check_output_contract` unless
the loader already ran it); each step can be called on its own (the bag tool overlaps them in
threads) or all at once with :meth:`FramePipeline.run`. What does not agree between the camera and
the model's training camera (aspect, focal length) is logged once per pipeline
(:func:`camera_warnings`; docs/cameras.md).

:class:`~depth_ros.frame_config.FrameConfig` (in :mod:`depth_ros.frame_config`, re-exported
here with the scale policy's spellings) is the one configuration of the frame path.

Why one module of ~520 lines: the stages are methods of one class holding the per-camera state
(rays, scale smoothing, rectification maps), so that callers can run them one by one (the bag
tool's threads, the node's timed stages) or all at once.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from depth_ros import msgconv
from depth_ros.core.aspect import aspect_window, model_window
from depth_ros.core.distortion import DistortionError, FrameRectifier
from depth_ros.core.focal_fallback import (
    PREDICTED_SUFFIX,
    PredictedCamera,
    UncalibratedCamera,
    camera_from_fov_output,
    fov_output_name,
    unusable_intrinsics,
)
from depth_ros.core.pointcloud import cloud_nbytes, forget_camera, make_cloud
from depth_ros.core.postprocess import DepthResult
from depth_ros.core.preprocess import fused_aspect_note, input_window, preprocess
from depth_ros.core.scale import FOCAL_TOLERANCE, ScaleUnavailableError, focal_ratio
from depth_ros.errors import BackendError, DepthRosError, InputError
from depth_ros.frame_config import (
    DEPTH_ENCODINGS,
    SCALE_FIELDS,
    SCALE_POLICIES,
    SPARSE_MODES,
    SYNC_TOLERANCE_MS,
    FrameConfig,
    ScaleChoice,
    check_depth_kind,
    make_postprocessor,
    parse_scale,
    resolve_scale_config,
)
from depth_ros.timing import StageTimer

if TYPE_CHECKING:
    from depth_ros.core.camera import CameraModel
    from depth_ros.inference.spec import ModelSpec

__all__ = [
    "DEPTH_ENCODINGS",
    "FrameConfig",
    "FramePipeline",
    "FrameRefused",
    "FrameResult",
    "REFUSAL_REASONS",
    "SCALE_FIELDS",
    "SCALE_POLICIES",
    "SPARSE_MODES",
    "SYNC_TOLERANCE_MS",
    "ScaleChoice",
    "camera_warnings",
    "check_depth_kind",
    "make_postprocessor",
    "parse_scale",
    "resolve_scale_config",
]

_log = logging.getLogger(__name__)


# -- the pipeline ------------------------------------------------------------------------------
#: Why a frame was refused (the key) -> what the user reads.
REFUSAL_REASONS: dict[str, str] = {
    "unsupported_encoding": "image encoding not supported",
    "bad_image": "image data malformed (size, step/row padding, or undecodable compressed data)",
    "bad_camera_info": "camera_info unusable (K all zeros, zero size, ...)",
    "size_mismatch": "image size differs from its camera_info",
    "preprocess": "the frame cannot be fed to the network",
    "non_finite_output": "model output has NaN or Inf, or an unusable shape",
    "scale_failed": "the scale policy had nothing to work with",
}


class FrameRefused(InputError):
    """A frame that cannot be made into depth; ``reason`` is a key of :data:`REFUSAL_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class FrameResult:
    """What one frame produced: the arrays and what ``DepthInfo`` reports about them.

    Attributes:
        depth_m: (H, W) float32 metres at the camera resolution, NaN invalid.
        rgb: (H, W, 3) uint8, the decoded image.
        camera: the frame's CameraModel.
        scale, shift, scale_source, scale_support: from the scale policy (DepthInfo fields).
        valid_fraction: finite pixels / all pixels.
        inference_ms: backend time.
        camera_change: ``"<old> -> <new>"`` when this frame's camera differs from the previous
            frame's (the per-camera state was rebuilt for it), else "".
        confidence: (H, W) float32 in [0, 1], or None.
        stage_ms: stage name -> milliseconds of this frame (:mod:`depth_ros.timing`: the
            stages :meth:`FramePipeline.run` and its caller timed; empty when not timed).
        range_m: (min_range_m, max_range_m) ``depth_m`` is already NaN outside (with every
            non-finite and non-positive depth), or None when unknown.
    """

    depth_m: np.ndarray
    rgb: np.ndarray
    camera: Any
    scale: float
    shift: float
    scale_source: str
    scale_support: int
    valid_fraction: float
    inference_ms: float
    camera_change: str = ""
    confidence: np.ndarray | None = None
    stage_ms: Mapping[str, float] = field(default_factory=dict)
    range_m: tuple[float, float] | None = None


def camera_warnings(spec: "ModelSpec", camera: "CameraModel", aspect: str, scale_policy: str) -> list[str]:
    """What the user is told, once, about a camera the model was not trained on.

    * ``aspect: stretch`` on a camera whose aspect differs from ``spec.train_aspect``: both
      aspects and the squash factor; ``crop`` / ``pad`` on such a camera for a spec that does
      not record its training image size (stretched all the same:
      :func:`~depth_ros.core.aspect.model_window`).
    * A metric model under scale policy ``model`` (not ``canonical_inverse_depth``, whose
      formula takes the camera's focal length): a spec without a training focal length (the
      depth is right only on a camera with the training focal length); a focal ratio that is
      corrected (:func:`~depth_ros.core.scale.focal_ratio`; DepthInfo: ``model_focal``, scale
      = the factor), with the factor; axes whose ratios differ (a stretched image).

    Args:
        camera: the frame's camera (before the aspect window).
        aspect: ``FrameConfig.aspect``.
        scale_policy: the resolved scale policy (``auto`` already resolved).

    Returns:
        One line per finding; empty when camera and model agree.
    """
    out: list[str] = []
    window = model_window(spec, camera.width, camera.height, aspect)
    cam_aspect = camera.width / camera.height
    mismatch = not aspect_window(camera.width, camera.height, spec.train_aspect, "crop").is_full
    if mismatch and aspect != "stretch" and window.is_full:
        out.append(
            f"model '{spec.name}' records no training image size (its spec: train_image_width_px, "
            f"train_image_height_px): camera {camera.width}x{camera.height} (aspect {cam_aspect:.4g}) is stretched to "
            f"its {spec.input_width}x{spec.input_height} input (aspect {spec.train_aspect:.4g}), not {'cropped' if aspect == 'crop' else 'padded'}"
        )
    elif mismatch and aspect == "stretch":
        out.append(
            f"camera {camera.width}x{camera.height} (aspect {cam_aspect:.4g}) is stretched to model '{spec.name}' "
            f"(trained aspect {spec.train_aspect:.4g}): a {max(cam_aspect, spec.train_aspect) / min(cam_aspect, spec.train_aspect):.3g}x "
            "squash of the geometry; aspect: crop or pad keeps it"
        )
    if scale_policy != "model" or spec.output_kind == "canonical_inverse_depth":
        return out
    net = window.camera(camera).resized(spec.input_width, spec.input_height)
    ratio = focal_ratio(spec, window.camera(camera))
    if ratio is None:
        out.append(
            f"model '{spec.name}' is metric but its spec records no training focal length: its depth is right only on "
            f"a camera with the training camera's focal length (this one: fx {net.fx:.6g} px at the network input); "
            "a spec with train_fx_px has depth corrected by f_cam / f_train"
        )
        return out
    factor = (ratio[0] * ratio[1]) ** 0.5
    if abs(factor - 1.0) > FOCAL_TOLERANCE:
        out.append(
            f"model '{spec.name}': this camera's focal length at the network input (fx {net.fx:.6g}, fy {net.fy:.6g} px) "
            f"differs from the training camera's ({spec.train_fx_px:.6g} px): depth multiplied by the focal ratio "
            f"{factor:.4g} (DepthInfo scale_source model_focal)"
        )
    if abs(ratio[0] / ratio[1] - 1.0) > FOCAL_TOLERANCE:
        out.append(
            f"model '{spec.name}': focal ratios differ by axis (x {ratio[0]:.4g}, y {ratio[1]:.4g}): the image is "
            "stretched against the training camera; depth is corrected by their geometric mean only"
        )
    return out


class FramePipeline:
    """Image + CameraInfo -> depth, cloud and DepthInfo values (ROS-free).

    Args:
        backend: an InferenceBackend (``spec`` must be a depth kind).
        config: the frame config.
        has_sparse: sparse metric points will be given (resolves scale policy ``auto``).
        contract_checked: the loader already ran the output contract dry run
            (:func:`~depth_ros.inference.backend.create_backend` does); else it is run here, once.

    Raises:
        ModelError: not a depth model, the model does not run on its spec'd input, or the
            scale policy does not fit it.

    Camera changes: every frame's camera (size, K, D) is compared with the previous frame's;
    a change rebuilds the per-camera state (the scale smoothing, fitted through the old
    intrinsics, and the old camera's cached pixel rays) and is reported in
    :attr:`FrameResult.camera_change`.
    """

    def __init__(self, backend: Any, config: FrameConfig, *, has_sparse: bool = False,
                 contract_checked: bool = False) -> None:
        spec = backend.spec
        check_depth_kind(spec)
        if not contract_checked:
            from depth_ros.inference.backend import check_output_contract

            check_output_contract(backend, spec)
        self.backend = backend
        self.spec = spec
        self.has_sparse = has_sparse
        self.config = config
        self._postprocessor = make_postprocessor(spec, config, has_sparse)
        self._rectifier = FrameRectifier(config.rectify)
        self.camera: Any = None  # the previous frame's CameraModel
        self._warned: set[str] = set()
        note = fused_aspect_note(spec, config.aspect)  # a fused graph's crop cannot follow the policy
        if note is not None:
            _log.warning("%s", note)
        #: the model's field-of-view output (spec extra["fov_output"]), the camera of a frame with
        #: an unusable CameraInfo (decode_frame); None when the model has none
        self.fov_output = fov_output_name(spec)
        names = getattr(backend, "output_names", None)
        if self.fov_output is not None and isinstance(names, (list, tuple)) and self.fov_output not in names:
            _log.warning("model '%s': its spec names a field-of-view output '%s' the model does not have (outputs: %s); "
                         "frames without a usable camera_info are refused", spec.name, self.fov_output, ", ".join(names))
            self.fov_output = None

    @property
    def backend_name(self) -> str:
        return str(getattr(self.backend, "name", "unknown"))

    def update_config(self, config: FrameConfig) -> None:
        """Apply a config change (range, scale policy): the postprocessor is rebuilt.

        Raises:
            ModelError: the new scale policy does not fit the model (config unchanged).
        """
        self._postprocessor = make_postprocessor(self.spec, config, self.has_sparse)
        if config.rectify != self.config.rectify:
            self._rectifier = FrameRectifier(config.rectify)
        self.config = config

    def reset(self) -> None:
        """Forget temporal state (scale smoothing): after a time jump or a camera change."""
        self._postprocessor = make_postprocessor(self.spec, self.config, self.has_sparse)

    def follow_camera(self, camera: Any) -> str:
        """Note this frame's camera; on a change rebuild the per-camera state.
        Returns ``"<old> -> <new>"`` on a change, else ""."""
        from depth_ros.core.camera import camera_change

        old, self.camera = self.camera, camera
        change = camera_change(old, camera)
        if change is not None and isinstance(old, PredictedCamera) and isinstance(camera, PredictedCamera) \
                and old.size == camera.size:
            forget_camera(old)  # one predicted focal length per frame: not a camera change
            return ""
        if old is None or change is not None:
            for text in camera_warnings(self.spec, camera, self.config.aspect, self._postprocessor.scaler.config.policy):
                if text not in self._warned:  # once per pipeline, even for a camera that comes back
                    self._warned.add(text)
                    _log.warning("%s", text)
        if change is None:
            return ""
        self.reset()
        forget_camera(old)
        return change

    def camera_text(self) -> str:
        """The current camera in a few words (for /diagnostics)."""
        cam = self.camera
        if cam is None:
            return "none yet"
        text = f"{cam.width}x{cam.height} fx {cam.fx:.6g} fy {cam.fy:.6g} px"
        window = model_window(self.spec, cam.width, cam.height, self.config.aspect)
        if not window.is_full:
            text += f"; the model sees a {window.width}x{window.height} {'pad' if window.is_pad else 'crop'}"
        return text

    # -- the steps ----------------------------------------------------------------------------
    @staticmethod
    def decode(image: Any, info: Any, compressed: bool) -> "tuple[np.ndarray, CameraModel]":
        """(rgb (H, W, 3) uint8, CameraModel) of an image message and its camera_info.

        Args:
            compressed: ``image`` is a sensor_msgs/CompressedImage (else an Image).

        Raises:
            FrameRefused: bad_camera_info, unsupported_encoding, size_mismatch or bad_image.
        """
        try:
            camera = msgconv.camera_info_to_model(info)
        except InputError as exc:
            raise FrameRefused("bad_camera_info", str(exc)) from None
        rgb = FramePipeline.decode_image(image, compressed)
        try:
            msgconv.check_image_matches_camera(rgb, camera)
        except InputError as exc:
            raise FrameRefused("size_mismatch", str(exc)) from None
        return rgb, camera

    def decode_frame(self, image: Any, info: Any, compressed: bool) -> "tuple[np.ndarray, CameraModel]":
        """:meth:`decode`, or the focal-length fallback (:mod:`depth_ros.core.focal_fallback`): when
        ``info`` has no usable intrinsics (None: no camera_info at all; K all zeros; fx, fy not
        finite and positive) and the model predicts its field of view (:attr:`fov_output`), the
        image with an :class:`UncalibratedCamera` of its size, replaced in :meth:`postprocess` by
        the predicted camera. A usable ``info`` is always decoded as it is.

        Raises:
            FrameRefused: as :meth:`decode` (bad_camera_info for an unusable ``info`` when the
                model has no field-of-view output), or size_mismatch when ``info`` states a size
                other than the image's.
        """
        reason = unusable_intrinsics(info) if self.fov_output is not None else None
        if reason is None:
            return FramePipeline.decode(image, info, compressed)  # not a subclass's override
        rgb = self.decode_image(image, compressed)
        height, width = rgb.shape[:2]
        stated = (int(getattr(info, "width", 0) or 0), int(getattr(info, "height", 0) or 0)) if info is not None else (0, 0)
        if stated not in ((0, 0), (width, height)):
            raise FrameRefused("size_mismatch", f"image is {width}x{height} but its camera_info says {stated[0]}x{stated[1]}")
        return rgb, UncalibratedCamera.of_size(width, height, reason)

    @staticmethod
    def decode_image(image: Any, compressed: bool) -> np.ndarray:
        """(H, W, 3) uint8 RGB of an Image (``compressed``: CompressedImage) message.

        Raises:
            FrameRefused: unsupported_encoding or bad_image.
        """
        if compressed:
            try:
                rgb = msgconv.compressed_to_rgb(image)
            except InputError as exc:
                raise FrameRefused("bad_image", str(exc)) from None
        else:
            if str(image.encoding) not in msgconv.COLOR_ENCODINGS:
                raise FrameRefused(
                    "unsupported_encoding",
                    f"encoding '{image.encoding}' (supported: {', '.join(msgconv.COLOR_ENCODINGS)})",
                )
            try:  # checks the message's own size claims against its data before allocating
                rgb = msgconv.image_to_rgb(image)
            except InputError as exc:
                raise FrameRefused("bad_image", str(exc)) from None
        return rgb

    def rectify(self, rgb: np.ndarray, camera: "CameraModel", info: Any) -> "tuple[np.ndarray, CameraModel]":
        """(rgb, camera) of the rectified camera when ``camera`` is distorted (``rectify: auto``,
        :mod:`depth_ros.core.distortion`; the new intrinsics from ``info``'s P), else as given.

        Raises:
            FrameRefused: bad_camera_info (a distortion model or coefficients that cannot be
                rectified).
        """
        try:
            return self._rectifier(rgb, camera, getattr(info, "p", None), getattr(info, "r", None))
        except DistortionError as exc:
            raise FrameRefused("bad_camera_info", str(exc)) from None

    def preprocess(self, rgb: np.ndarray, camera: "CameraModel") -> np.ndarray:
        """The network input of one frame: float32 in the ModelSpec's layout, or for a fused model
        (``spec.fused``) the camera's uint8 (1, H, W, 3) image itself (the graph resizes and normalises).

        Raises:
            FrameRefused: preprocess (the frame cannot be fed to the network).
        """
        try:
            return preprocess(rgb, camera, self.spec, self.config.aspect).tensor
        except (InputError, ValueError) as exc:
            raise FrameRefused("preprocess", str(exc)) from None

    def infer(self, tensor: np.ndarray, where: str = "a frame") -> tuple[dict[str, np.ndarray], float]:
        """(outputs by name, milliseconds) of the network on ``tensor``.

        Raises:
            BackendError: the runtime failed (its own exception, in one line naming ``where``).
        """
        t0 = time.perf_counter()
        try:
            outputs = self.backend.infer(tensor)
        except DepthRosError:
            raise
        except Exception as exc:  # the runtime's own error types
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise BackendError(f"{self.backend_name} failed on {where}: {type(exc).__name__}: {text}") from exc
        return outputs, (time.perf_counter() - t0) * 1e3

    def postprocess(self, outputs: Mapping[str, np.ndarray], rgb: np.ndarray, camera: "CameraModel",
                    sparse_points_cam: np.ndarray | None = None, inference_ms: float = 0.0) -> FrameResult:
        """Metric depth and its DepthInfo values from the network outputs (follows the camera).

        Args:
            sparse_points_cam: (N, 3) float32 metres in the camera optical frame, for
                sparse_alignment, or None.

        Raises:
            FrameRefused: scale_failed (no metric scale for this frame) or non_finite_output
                (NaN / Inf or an unusable shape, or no usable field of view for a frame of
                :meth:`decode_frame`'s fallback).
        """
        camera = self._frame_camera(outputs, camera)
        change = self.follow_camera(camera)
        # a fused model's window is the one its graph cuts (spec.fused_aspect), not config.aspect's
        window = input_window(self.spec, camera.width, camera.height, self.config.aspect)
        try:
            result: DepthResult = self._postprocessor(dict(outputs), window.camera(camera), sparse_points_cam)
        except ScaleUnavailableError as exc:  # the model is fine; the scale input is not
            raise FrameRefused("scale_failed", str(exc)) from None
        except InputError as exc:
            raise FrameRefused("non_finite_output", str(exc)) from None
        depth_m = np.asarray(result.depth_m, dtype=np.float32)
        if depth_m.shape != (window.height, window.width):
            raise FrameRefused("non_finite_output", f"postprocess returned depth of shape {depth_m.shape}, "
                               f"expected {(window.height, window.width)}")
        depth_m = window.paste(depth_m)  # camera resolution, registered; cropped-off bands NaN
        confidence = None if result.confidence is None else window.paste(result.confidence, 0.0)
        valid = float(np.count_nonzero(np.isfinite(depth_m))) / max(depth_m.size, 1)
        return FrameResult(
            depth_m=depth_m, rgb=rgb, camera=camera, scale=float(result.scale), shift=float(result.shift),
            scale_source=str(result.scale_source) + (PREDICTED_SUFFIX if isinstance(camera, PredictedCamera) else ""),
            scale_support=int(result.scale_support), valid_fraction=valid,
            inference_ms=float(inference_ms), camera_change=change, confidence=confidence,
            range_m=(float(self._postprocessor.config.min_range_m), float(self._postprocessor.config.max_range_m)),
        )

    def _frame_camera(self, outputs: Mapping[str, np.ndarray], camera: "CameraModel") -> "CameraModel":
        """``camera``, or for an :class:`UncalibratedCamera` (:meth:`decode_frame`) the camera of
        the model's predicted field of view (warned once per pipeline).

        Raises:
            FrameRefused: non_finite_output (no usable field of view in ``outputs``).
        """
        if not isinstance(camera, UncalibratedCamera):
            return camera
        if self.fov_output is None:
            raise FrameRefused("bad_camera_info", f"{camera.reason}, and model '{self.spec.name}' predicts no field of view")
        window = input_window(self.spec, camera.width, camera.height, self.config.aspect)  # the FOV spans what the network saw
        try:
            predicted = camera_from_fov_output(outputs, self.fov_output, camera, window.width)
        except InputError as exc:
            raise FrameRefused("non_finite_output", str(exc)) from None
        if "predicted_camera" not in self._warned:
            self._warned.add("predicted_camera")
            _log.warning("%s: each such frame's camera comes from the field of view model '%s' predicts (first: "
                         "%.4g deg, fx = fy = %.6g px; DepthInfo scale_source ends in %s)", camera.reason,
                         self.spec.name, predicted.fov_deg, predicted.fx, PREDICTED_SUFFIX)
        return predicted

    def cloud(self, result: FrameResult, out: Any = None) -> np.ndarray | None:
        """The organized cloud of a frame (structured (h, w) array, core.pointcloud layout), or
        None when ``publish_cloud`` is off.

        Args:
            out: None, or a zeroed (or earlier-used) buffer of :meth:`cloud_nbytes` bytes to write
                the cloud into (:func:`~depth_ros.core.pointcloud.make_cloud`'s ``out``).
        """
        config = self.config
        if not config.publish_cloud:
            return None
        # The postprocessor already made every depth outside this range NaN: no second test.
        range_checked = result.range_m == (float(config.min_range_m), float(config.max_range_m))
        return make_cloud(result.depth_m, result.camera, rgb=result.rgb if config.cloud_rgb else None,
                          decimation=config.cloud_decimation, min_range_m=config.min_range_m,
                          max_range_m=config.max_range_m, out=out, range_checked=range_checked)

    def cloud_nbytes(self, result: FrameResult) -> int:
        """Bytes of :meth:`cloud`'s cloud of ``result`` (the payload of its PointCloud2)."""
        config = self.config
        return cloud_nbytes(result.camera, rgb=config.cloud_rgb, decimation=config.cloud_decimation)

    def run(self, rgb: np.ndarray, camera: "CameraModel", sparse_points_cam: np.ndarray | None = None,
            timer: StageTimer | None = None) -> FrameResult:
        """Preprocess, infer and postprocess one decoded frame (the cloud is left to the caller,
        who may not need it).

        Args:
            timer: the frame's timer, holding the caller's earlier stages (decode, rectify);
                None: a new one. The result's ``stage_ms`` is its stages after postprocess.
        """
        timer = StageTimer() if timer is None else timer
        with timer.stage("preprocess"):
            tensor = self.preprocess(rgb, camera)
        outputs, inference_ms = self.infer(tensor)
        timer.add("infer", inference_ms)
        with timer.stage("postprocess"):
            result = self.postprocess(outputs, rgb, camera, sparse_points_cam, inference_ms)
        return dataclasses.replace(result, stage_ms=dict(timer.ms))

    def depth_info_fields(self, result: FrameResult) -> dict[str, Any]:
        """The DepthInfo fields the pipeline knows (the caller adds latency and counters)."""
        return {
            "model": self.spec.name,
            "output_kind": self.spec.output_kind,
            "backend": self.backend_name,
            "scale_source": result.scale_source,
            "scale": result.scale,
            "shift": result.shift,
            "scale_support": result.scale_support,
            "min_range_m": float(self.config.min_range_m),
            "max_range_m": float(self.config.max_range_m),
            "valid_fraction": result.valid_fraction,
            "inference_ms": result.inference_ms,
        }
