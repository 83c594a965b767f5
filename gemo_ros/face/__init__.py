"""Face model: template mesh, named expression basis, joints and linear blend skinning."""
