"""The trebuchet's physics: a projectile with quadratic air drag, integrated with fixed-step RK4.

Only the simulator component uses this module. `launch` returns the landing
distance of each shot and its exact derivative with respect to the inputs
(release angle, counterweight mass): the tangent-linear equations are stepped
with the same RK4 scheme as the state, so the derivative is that of the
discrete simulation itself and agrees with its finite differences.
"""

from __future__ import annotations

import numpy as np

G = 9.81  # m/s²
DRAG = 0.002  # 1/m: ½ ρ C_d A / m of the projectile
RELEASE_HEIGHT = 3.0  # m
SPEED_PER_SQRT_KG = 1.3  # launch speed = this * sqrt(counterweight): the arm's energy transfer
DT = 0.1  # s, fixed step
MAX_STEPS = 2000  # 100 s of flight: far beyond any shot of this machine

ANGLE_RANGE = (0.15, 1.35)  # rad
MASS_RANGE = (100.0, 1000.0)  # kg


def _field(vx: np.ndarray, vy: np.ndarray) -> tuple[np.ndarray, ...]:
    """Acceleration (ax, ay) and its Jacobian w.r.t. (vx, vy); the position does not enter."""
    speed = np.sqrt(vx * vx + vy * vy)
    cross = -DRAG * vx * vy / speed
    return (-DRAG * speed * vx, -G - DRAG * speed * vy,
            -DRAG * (speed + vx * vx / speed), cross, cross, -DRAG * (speed + vy * vy / speed))


def launch(angle: np.ndarray, mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landing distances (n,) and d(distance)/d(angle, mass) (n, 2) for n shots."""
    angle = np.asarray(angle, dtype=float)
    mass = np.asarray(mass, dtype=float)
    speed0 = SPEED_PER_SQRT_KG * np.sqrt(mass)
    dspeed_dmass = speed0 / (2 * mass)
    # State (x, y, vx, vy) and its tangents: one (n, 2) array per state variable.
    x = np.zeros_like(angle)
    y = np.full_like(angle, RELEASE_HEIGHT)
    vx = speed0 * np.cos(angle)
    vy = speed0 * np.sin(angle)
    zeros = np.zeros((angle.size, 2))
    dx, dy = zeros.copy(), zeros.copy()
    dvx = np.stack([-speed0 * np.sin(angle), np.cos(angle) * dspeed_dmass], axis=1)
    dvy = np.stack([speed0 * np.cos(angle), np.sin(angle) * dspeed_dmass], axis=1)

    distance = np.full(angle.size, np.nan)
    gradient = np.full((angle.size, 2), np.nan)
    flying = np.ones(angle.size, dtype=bool)
    for _ in range(MAX_STEPS):
        ix, idx, iy, idy, ivx, idvx, ivy, idvy = _rk4_step(vx, vy, dvx, dvy)
        nx, ny, ndx, ndy = x + ix, y + iy, dx + idx, dy + idy
        landed = flying & (ny < 0)
        if landed.any():
            # Linear interpolation to y = 0 inside the step, differentiated as such.
            y0, y1 = y[landed], ny[landed]
            alpha = y0 / (y0 - y1)
            dalpha = ((dy[landed] * (y0 - y1)[:, None] - y0[:, None] * (dy[landed] - ndy[landed]))
                      / ((y0 - y1) ** 2)[:, None])
            distance[landed] = x[landed] + alpha * (nx[landed] - x[landed])
            gradient[landed] = (dx[landed] + dalpha * (nx[landed] - x[landed])[:, None]
                                + alpha[:, None] * (ndx[landed] - dx[landed]))
            flying &= ~landed
            if not flying.any():
                break
        x, y, vx, vy = nx, ny, vx + ivx, vy + ivy
        dx, dy, dvx, dvy = ndx, ndy, dvx + idvx, dvy + idvy
    return distance, gradient


def _rk4_step(vx: np.ndarray, vy: np.ndarray, dvx: np.ndarray,
              dvy: np.ndarray) -> tuple[np.ndarray, ...]:
    """Increments of x, dx, y, dy, vx, dvx, vy, dvy over one RK4 step.

    Each stage evaluates the velocity, the acceleration and their tangents at
    the stage point; the tangents are the stage's Jacobian applied to the
    tangents of that point, which makes the result the exact derivative of
    the step.
    """
    total = [np.zeros_like(vx), np.zeros_like(dvx)] * 4
    svx, svy, sdvx, sdvy = vx, vy, dvx, dvy
    for weight, next_scale in ((1.0, DT / 2), (2.0, DT / 2), (2.0, DT), (1.0, 0.0)):
        ax, ay, axx, axy, ayx, ayy = _field(svx, svy)
        dax = axx[:, None] * sdvx + axy[:, None] * sdvy
        day = ayx[:, None] * sdvx + ayy[:, None] * sdvy
        for i, rate in enumerate((svx, sdvx, svy, sdvy, ax, dax, ay, day)):
            total[i] = total[i] + weight * rate
        svx, svy = vx + next_scale * ax, vy + next_scale * ay
        sdvx, sdvy = dvx + next_scale * dax, dvy + next_scale * day
    return tuple(DT / 6 * t for t in total)
