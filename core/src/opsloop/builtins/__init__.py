"""Built-in plugins: registered exactly like external ones, first, so others can override."""
