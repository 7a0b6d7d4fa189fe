"""Fake of SpoutGL.enums: the GL format enums the real binding re-exports (GL header values)."""

GL_RGBA = 0x1908
GL_BGRA_EXT = 0x80E1
GL_RGB = 0x1907
GL_BGR_EXT = 0x80E0
