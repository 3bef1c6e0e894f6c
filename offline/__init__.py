"""Offline (no AWS account, no Docker) runtime pieces: clocks, the HealthImaging emulator, the local pipeline runner."""
