"""The only place the project touches other libraries' private APIs: one adapter per library."""
