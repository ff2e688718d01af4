"""opsloop-evidently: drift detectors for the monitor stage (Evidently and a light PSI/KS one).

Importing this package imports neither Evidently nor pandas; the detectors load them
when they run, so `opsloop --help` stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
