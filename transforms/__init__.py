"""Built-in transforms, written exactly as a plugin author writes one."""
