"""Every data key llamafleet reads, declared once (llamafleet.settings.tunables), and a host's
settings as one typed object (llamafleet.settings.typed)."""

from llamafleet.settings.declare import Setting, suggest
from llamafleet.settings.tunables import BY_NAME, SETTINGS
from llamafleet.settings.typed import HostSettings, SettingError, default_settings, settings_for

__all__ = ["BY_NAME", "SETTINGS", "HostSettings", "Setting", "SettingError", "default_settings", "settings_for",
           "suggest"]
