"""Smooth analytic trajectories of the robot base (``base_link``) in the world (``odom``) frame.

Convention (REP 103/105): world z up, floor at z = 0; base_link x forward, y left, z up,
standing on the floor. Orientation is yaw-pitch-roll (intrinsic Z-Y'-X'', ``R = Rz(yaw) Ry(pitch)
Rx(roll)``). Every coordinate is a sum of a line and sinusoids of time, so velocities are exact
derivatives, not finite differences: the Odometry twist in the bag is the true one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from depth_ros.core.rotation import rpy_to_matrix as rotation_from_rpy
from depth_ros.synthetic.config import SynthConfig

__all__ = ["BaseState", "Signal", "Trajectory", "make_trajectory", "rotation_from_rpy"]


@dataclass(frozen=True)
class Signal:
    """``f(t) = c0 + c1 * t + sum_k a_k * sin(w_k * t + phi_k)``, t in seconds."""

    c0: float = 0.0
    c1: float = 0.0
    amps: tuple[float, ...] = ()
    omegas: tuple[float, ...] = ()  # rad/s
    phases: tuple[float, ...] = ()

    def value(self, t: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        out = self.c0 + self.c1 * t
        for a, w, p in zip(self.amps, self.omegas, self.phases):
            out = out + a * np.sin(w * t + p)
        return out

    def d1(self, t: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        out = np.full_like(t, self.c1)
        for a, w, p in zip(self.amps, self.omegas, self.phases):
            out = out + a * w * np.cos(w * t + p)
        return out

    def d2(self, t: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        out = np.zeros_like(t)
        for a, w, p in zip(self.amps, self.omegas, self.phases):
            out = out - a * w * w * np.sin(w * t + p)
        return out

    def time_scaled(self, s: float) -> "Signal":
        """``g(t) = f(s * t)``."""
        return Signal(self.c0, self.c1 * s, self.amps, tuple(w * s for w in self.omegas), self.phases)


@dataclass(frozen=True)
class BaseState:
    """Pose and velocity of base_link at one instant.

    Attributes:
        T_world_base: (4, 4) float64, base_link -> world (odom).
        v_world_mps: (3,) linear velocity of base_link's origin in the world frame, m/s.
        v_base_mps: (3,) the same velocity expressed in base_link (Odometry twist.linear).
        omega_base_radps: (3,) angular velocity expressed in base_link (Odometry twist.angular).
    """

    T_world_base: np.ndarray
    v_world_mps: np.ndarray
    v_base_mps: np.ndarray
    omega_base_radps: np.ndarray


@dataclass(frozen=True)
class Trajectory:
    """Base trajectory: position signals and yaw/pitch/roll signals.

    If ``yaw_follows_heading`` the yaw is ``atan2(dy/dt, dx/dt) + yaw(t)`` (the base looks where
    it drives, plus a weave), else it is ``yaw(t)``.
    """

    x: Signal
    y: Signal
    z: Signal = field(default_factory=Signal)
    yaw: Signal = field(default_factory=Signal)
    pitch: Signal = field(default_factory=Signal)
    roll: Signal = field(default_factory=Signal)
    yaw_follows_heading: bool = False

    def positions(self, t_s: np.ndarray) -> np.ndarray:
        """(N, 3) base positions in the world at times ``t_s`` (N,)."""
        t_s = np.asarray(t_s, dtype=np.float64)
        return np.stack([self.x.value(t_s), self.y.value(t_s), self.z.value(t_s)], axis=-1)

    def _yaw(self, t: float) -> tuple[float, float]:
        yaw = float(self.yaw.value(t))
        yaw_rate = float(self.yaw.d1(t))
        if self.yaw_follows_heading:
            vx, vy = float(self.x.d1(t)), float(self.y.d1(t))
            ax, ay = float(self.x.d2(t)), float(self.y.d2(t))
            speed2 = vx * vx + vy * vy
            if speed2 > 1e-12:
                yaw += math.atan2(vy, vx)
                yaw_rate += (vx * ay - vy * ax) / speed2
        return yaw, yaw_rate

    def state(self, t_s: float) -> BaseState:
        """Pose and exact velocities of base_link at time ``t_s`` (seconds since the first frame)."""
        t = float(t_s)
        yaw, yaw_rate = self._yaw(t)
        pitch, pitch_rate = float(self.pitch.value(t)), float(self.pitch.d1(t))
        roll, roll_rate = float(self.roll.value(t)), float(self.roll.d1(t))
        R = rotation_from_rpy(roll, pitch, yaw)
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = [float(self.x.value(t)), float(self.y.value(t)), float(self.z.value(t))]
        v_world = np.array([float(self.x.d1(t)), float(self.y.d1(t)), float(self.z.d1(t))])
        # Body angular velocity of R = Rz(yaw) Ry(pitch) Rx(roll) from the Euler rates.
        sr, cr = math.sin(roll), math.cos(roll)
        sp, cp = math.sin(pitch), math.cos(pitch)
        omega = np.array(
            [
                roll_rate - yaw_rate * sp,
                pitch_rate * cr + yaw_rate * sr * cp,
                -pitch_rate * sr + yaw_rate * cr * cp,
            ]
        )
        return BaseState(T_world_base=T, v_world_mps=v_world, v_base_mps=R.T @ v_world, omega_base_radps=omega)


def _mean_speed(x: Signal, y: Signal, duration_s: float) -> float:
    t = np.linspace(0.0, duration_s, 4001)
    return float(np.mean(np.hypot(x.d1(t), y.d1(t))))


def make_trajectory(config: SynthConfig, rng: np.random.Generator) -> Trajectory:
    """The base trajectory named by ``config.trajectory`` at ``config.speed_mps``.

    - ``forward``: along +x (a corridor's axis) at ``speed_mps``, weaving sideways by +-0.2 m
      with the yaw following the heading plus a slow +-4 degree look-around.
    - ``orbit``: a circle of radius 2.5 m around the world origin at ``speed_mps``, facing
      the centre (the base moves sideways).
    - ``random_smooth``: a random smooth closed-form curve (sums of 3 sinusoids per axis) of
      mean speed ``speed_mps`` with yaw along the heading and small pitch/roll wobble.
    """
    v = config.speed_mps
    two_pi = 2.0 * math.pi
    if config.trajectory == "forward":
        ph = tuple(rng.uniform(0, two_pi, 3))
        weave_amp = 0.2 if v > 0 else 0.0
        return Trajectory(
            x=Signal(0.0, v),
            y=Signal(0.0, 0.0, (weave_amp,), (two_pi / 9.0,), (ph[0],)),
            yaw=Signal(0.0, 0.0, (0.07, 0.03), (two_pi / 6.0, two_pi / 2.3), (ph[1], ph[2])),
            yaw_follows_heading=True,
        )
    if config.trajectory == "orbit":
        radius = 2.5
        omega = v / radius
        phi0 = float(rng.uniform(0, two_pi))
        return Trajectory(
            x=Signal(0.0, 0.0, (radius,), (omega,), (phi0 + math.pi / 2,)),  # r cos(wt + phi0)
            y=Signal(0.0, 0.0, (radius,), (omega,), (phi0,)),  # r sin(wt + phi0)
            # Facing the centre: yaw = angle of the position + pi.
            yaw=Signal(phi0 + math.pi, omega, (0.05,), (two_pi / 7.0,), (float(rng.uniform(0, two_pi)),)),
        )
    # random_smooth: amplitudes keep the curve within +-3 m of the origin.
    amps_x = tuple(float(a) for a in rng.uniform(0.4, 1.0, 3))
    amps_y = tuple(float(a) for a in rng.uniform(0.4, 1.0, 3))
    om_x = tuple(float(w) for w in rng.uniform(0.15, 0.6, 3))
    om_y = tuple(float(w) for w in rng.uniform(0.15, 0.6, 3))
    x = Signal(0.0, 0.0, amps_x, om_x, tuple(float(p) for p in rng.uniform(0, two_pi, 3)))
    y = Signal(0.0, 0.0, amps_y, om_y, tuple(float(p) for p in rng.uniform(0, two_pi, 3)))
    if v > 0:
        s = v / _mean_speed(x, y, 200.0)
        x, y = x.time_scaled(s), y.time_scaled(s)
    else:
        x, y = x.time_scaled(0.0), y.time_scaled(0.0)
    wobble = tuple(float(p) for p in rng.uniform(0, two_pi, 3))
    return Trajectory(
        x=x,
        y=y,
        z=Signal(0.0, 0.0, (0.03,), (two_pi / 3.1,), (wobble[0],)),
        yaw=Signal(0.0, 0.0, (0.05,), (two_pi / 4.7,), (wobble[1],)),
        pitch=Signal(0.0, 0.0, (0.02,), (two_pi / 3.7,), (wobble[2],)),
        roll=Signal(0.0, 0.0, (0.015,), (two_pi / 2.9,), (wobble[0] + 1.0,)),
        yaw_follows_heading=True,
    )
