"""Demos that ship with the package, so `swergio-al demo ...` works from a plain install."""
