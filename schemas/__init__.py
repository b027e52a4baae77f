"""The JSON Schemas of dingsync, shipped inside the package as dingsync.schemas."""
