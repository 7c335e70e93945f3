"""One builder of the output messages, for rclpy message classes or a rosbags typestore.

The field values come from :mod:`depth_ros.msgconv` (pure); :class:`MessageBuilder` puts them
into message objects of whichever flavour it was given:

* live, the node: :func:`depth_ros.ros.messages.rclpy_builder` (rclpy classes; byte payloads as
  ``array.array('B')``, one copy: a Python list would be ~100x slower);
* offline, ``depth-ros infer`` and the synthetic renderer: :meth:`MessageBuilder.for_typestore`
  (rosbags dataclasses; numpy arrays).

Every builder that takes a ``header`` copies it (stamp and frame_id): outputs are stamped with
the time the image was taken, never ``now()``. Layouts (REP 118 / depth_image_proc): depth
``32FC1`` metres NaN invalid or ``16UC1`` millimetres 0 invalid; clouds organized (h x w), x, y,
z float32 at 0, 4, 8 (+ rgb at 16, point_step 32), ``is_dense`` false.

No ROS import: the message classes are handed in.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

from depth_ros import msgconv

__all__ = ["DEPTH_INFO_TYPE", "MESSAGE_TYPES", "MessageBuilder"]

DEPTH_INFO_TYPE = "depth_ros/msg/DepthInfo"
#: The message types a builder needs (names as in a rosbags typestore).
MESSAGE_TYPES = (
    "builtin_interfaces/msg/Time",
    "std_msgs/msg/Header",
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CameraInfo",
    "sensor_msgs/msg/RegionOfInterest",
    "sensor_msgs/msg/PointCloud2",
    "sensor_msgs/msg/PointField",
    DEPTH_INFO_TYPE,
)


def _numpy_bytes(data: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)


def _numpy_floats(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _with_data(cls: Any, fields: dict[str, Any], data: Any) -> Any:
    """A message of ``cls`` with ``fields`` and the byte payload ``data`` (a constructor argument)."""
    return cls(**fields, data=data)


def _field_kinds(cls: type) -> dict[str, type]:
    """Field name -> str / float / int of a DepthInfo class (rclpy or rosbags), header left out."""
    if hasattr(cls, "get_fields_and_field_types"):  # rclpy
        names = cls.get_fields_and_field_types()
        kind_of = {"string": str, "float": float, "double": float}
        return {n: kind_of.get(t, int) for n, t in names.items() if n != "header"}
    kinds = {"str": str, "float": float}
    return {f.name: kinds.get(str(f.type), int) for f in dataclasses.fields(cls)
            if f.name != "header" and not f.name.startswith("__")}


class MessageBuilder:
    """Builds the depth outputs from arrays, in one message flavour.

    Args:
        types: message type name (see :data:`MESSAGE_TYPES`) -> message class.
        byte_array: 1-D uint8 numpy array -> what the flavour's ``uint8[]`` fields take.
        float_array: a sequence of numbers -> what its ``float64[]`` fields take.
        with_data: (message class, the other fields, payload from ``byte_array``) -> a message
            whose ``data`` is that payload (rclpy's constructor would copy it twice).
    """

    def __init__(self, types: Mapping[str, Any], byte_array: Callable[[np.ndarray], Any] = _numpy_bytes,
                 float_array: Callable[[Any], Any] = _numpy_floats,
                 with_data: Callable[[Any, dict[str, Any], Any], Any] = _with_data) -> None:
        missing = [t for t in MESSAGE_TYPES if t not in types]
        if missing:
            raise ValueError(f"message types missing for the builder: {missing}")
        self.types = {t: types[t] for t in MESSAGE_TYPES}
        self.byte_array = byte_array
        self.float_array = float_array
        self.with_data = with_data
        self._info_kinds = _field_kinds(self.types[DEPTH_INFO_TYPE])

    @classmethod
    def for_typestore(cls, typestore: Any) -> "MessageBuilder":
        """A builder of rosbags messages (numpy arrays for array fields)."""
        return cls(typestore.types)

    # -- headers ----------------------------------------------------------------------------
    def header(self, header: Any) -> Any:
        """A new std_msgs/Header with the stamp and frame_id of ``header``."""
        T = self.types
        stamp = T["builtin_interfaces/msg/Time"](sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec))
        return T["std_msgs/msg/Header"](stamp=stamp, frame_id=str(header.frame_id))

    def header_at(self, stamp_ns: int, frame_id: str) -> Any:
        """A std_msgs/Header of a stamp in integer nanoseconds."""
        sec, nanosec = msgconv.ns_to_stamp(stamp_ns)
        T = self.types
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id)

    # -- images -----------------------------------------------------------------------------
    def image(self, header: Any, *, height: int, width: int, encoding: str, step: int, data: np.ndarray,
              is_bigendian: int = 0) -> Any:
        """sensor_msgs/Image with ``header`` used as is (make it with :meth:`header`)."""
        fields = dict(header=header, height=int(height), width=int(width), encoding=str(encoding),
                      is_bigendian=int(is_bigendian), step=int(step))
        return self.with_data(self.types["sensor_msgs/msg/Image"], fields, self.byte_array(data))

    def depth_image(self, depth_m: np.ndarray, header: Any, encoding: str = "32FC1", payload: Any = None) -> Any:
        """sensor_msgs/Image of ``depth_m`` ((H, W) float metres, NaN invalid): 32FC1 m or 16UC1 mm.

        Args:
            payload: None (a new payload), or a payload of this builder's flavour of exactly the
                image's bytes (H W 4 for 32FC1, H W 2 for 16UC1) to write the samples into and
                use as the message's data (no second copy).
        """
        f = msgconv.depth_image_fields(depth_m, encoding, out=payload)
        fields = dict(header=self.header(header), height=int(f["height"]), width=int(f["width"]),
                      encoding=str(f["encoding"]), is_bigendian=int(f["is_bigendian"]), step=int(f["step"]))
        data = self.byte_array(f["data"]) if payload is None else payload
        return self.with_data(self.types["sensor_msgs/msg/Image"], fields, data)

    # -- camera_info ------------------------------------------------------------------------
    def camera_info(self, header: Any, *, height: int, width: int, distortion_model: str, d: Any, k: Any, r: Any,
                    p: Any, binning_x: int = 0, binning_y: int = 0,
                    roi: tuple[int, int, int, int, bool] = (0, 0, 0, 0, False)) -> Any:
        """sensor_msgs/CameraInfo with ``header`` used as is; ``roi``: (x_offset, y_offset,
        height, width, do_rectify)."""
        x_offset, y_offset, roi_h, roi_w, do_rectify = roi
        T = self.types
        return T["sensor_msgs/msg/CameraInfo"](
            header=header, height=int(height), width=int(width), distortion_model=str(distortion_model),
            d=self.float_array(d), k=self.float_array(k), r=self.float_array(r), p=self.float_array(p),
            binning_x=int(binning_x), binning_y=int(binning_y),
            roi=T["sensor_msgs/msg/RegionOfInterest"](
                x_offset=int(x_offset), y_offset=int(y_offset), height=int(roi_h), width=int(roi_w),
                do_rectify=bool(do_rectify)),
        )

    def copy_camera_info(self, info: Any, header: Any) -> Any:
        """A copy of CameraInfo ``info`` (any flavour) with ``header`` copied (the depth image has
        the input image's resolution and intrinsics)."""
        roi = info.roi
        return self.camera_info(
            self.header(header), height=info.height, width=info.width, distortion_model=info.distortion_model,
            d=info.d, k=info.k, r=info.r, p=info.p, binning_x=info.binning_x, binning_y=info.binning_y,
            roi=(roi.x_offset, roi.y_offset, roi.height, roi.width, roi.do_rectify),
        )

    def camera_info_for(self, info: Any, camera: Any, header: Any) -> Any:
        """The CameraInfo of a depth image made from ``info``'s camera: a copy of ``info``
        (:meth:`copy_camera_info`) when it has no distortion; for a distorted camera the
        rectified ``camera`` the depth was computed in (D zero, plumb_bob, R identity,
        K and P from ``camera.K``), as the rectified images of image_proc are described. A camera
        predicted by the model (:class:`~depth_ros.core.focal_fallback.PredictedCamera`: ``info``
        had no usable intrinsics, or is None) is described the same way, with the predicted K."""
        from depth_ros.core.focal_fallback import PredictedCamera

        if not isinstance(camera, PredictedCamera) and not any(float(v) != 0.0 for v in info.d):
            return self.copy_camera_info(info, header)
        K = np.asarray(camera.K, dtype=np.float64)
        P = np.concatenate([K, np.zeros((3, 1))], axis=1)
        return self.camera_info(
            self.header(header), height=camera.height, width=camera.width, distortion_model="plumb_bob",
            d=np.zeros(5), k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1),
        )

    # -- clouds -----------------------------------------------------------------------------
    def pointcloud(self, cloud: np.ndarray, header: Any, is_dense: bool | None = None, payload: Any = None) -> Any:
        """sensor_msgs/PointCloud2 of a structured cloud (core.pointcloud.make_cloud), ``header``
        copied. ``is_dense``: None keeps msgconv's (False: organized clouds hold NaN).

        Args:
            payload: None (the cloud's bytes are copied into a new payload), or a payload of
                this builder's flavour that ``cloud`` is a view of (make_cloud's ``out``): used
                as the message's data as it is.

        Raises:
            ValueError: ``payload`` is not the size of the cloud.
        """
        T = self.types
        f = msgconv.pointcloud2_fields(cloud)
        point_field = T["sensor_msgs/msg/PointField"]
        fields = dict(
            header=self.header(header), height=int(f["height"]), width=int(f["width"]),
            fields=[point_field(name=n, offset=o, datatype=d, count=c) for n, o, d, c in f["fields"]],
            is_bigendian=bool(f["is_bigendian"]), point_step=int(f["point_step"]), row_step=int(f["row_step"]),
            is_dense=bool(f["is_dense"] if is_dense is None else is_dense),
        )
        if payload is None:
            payload = self.byte_array(f["data"])
        elif len(payload) != f["data"].nbytes:
            raise ValueError(f"cloud payload holds {len(payload)} bytes, the cloud {f['data'].nbytes}")
        return self.with_data(T["sensor_msgs/msg/PointCloud2"], fields, payload)

    # -- DepthInfo --------------------------------------------------------------------------
    def depth_info(self, header: Any, **fields: Any) -> Any:
        """depth_ros/msg/DepthInfo with ``header`` copied and the given fields (names as in
        msg/DepthInfo.msg; the others 0 / ""). Floats are cast to float, counts to int.

        Raises:
            AttributeError: a field DepthInfo does not have.
        """
        unknown = sorted(set(fields) - set(self._info_kinds))
        if unknown:
            raise AttributeError(f"DepthInfo has no field(s) {unknown}")
        values = {name: kind(fields[name]) if name in fields else kind() for name, kind in self._info_kinds.items()}
        return self.types[DEPTH_INFO_TYPE](header=self.header(header), **values)
