"""Page images: synthetic form pages, page checks, thumbnails and PDF assembly."""
