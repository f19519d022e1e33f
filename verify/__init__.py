"""verify: keyframes from claimed footage, reviewed in Label Studio, merged into a verification report."""

__version__ = "0.2.0"
