"""Helpers for the tests that talk to ROS over real DDS (a listener, helper processes)."""
