"""Tests of haperf.detect: phi formulas, detector, bank, adaptive threshold, UDP service, study."""
