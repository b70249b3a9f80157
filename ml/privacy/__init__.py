"""What a photo file gives away, and a copy that gives away nothing (``roost audit`` / ``roost
strip``): the containers (JPEG segments, PNG chunks, WebP chunks, HEIC through pillow-heif),
the metadata inside them (EXIF with its GPS block and thumbnail, XMP, IPTC IIM, text chunks) as
findings of four kinds, and lossless removal. Reads bytes only: no pixel is decoded to audit or
to strip."""

LOCATION, TIME, IDENTITY, OTHER = "location", "time", "identity", "other"
KINDS = (LOCATION, TIME, IDENTITY, OTHER)
