"""The reference search spaces, shipped as package data (`nasc search nb201`)."""
