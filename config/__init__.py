"""SLA threshold profiles (``config/<name>.toml``) and their loader/validator (pure)."""

from __future__ import annotations

from config.loader import ConfigError, Profile, available_profiles, load_profile

__all__ = ["ConfigError", "Profile", "available_profiles", "load_profile"]
