"""The corpus bundled with genesys-dsl (data files only; see README.md)."""
