"""Helpers shared by ROS-free tests (the host-sync recorder of the per-frame path)."""
