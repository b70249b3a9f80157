"""What a photo file gives away, and a copy that gives away nothing (``roost audit`` / ``roost
strip``): the containers (JPEG segments, PNG chunks, WebP chunks, HEIC through pillow-heif),
the metadata inside them (EXIF with its GPS block and thumbnail, XMP, IPTC IIM, text chunks) as
findings of five kinds, and lossless removal. Reads bytes only: no pixel is decoded to audit or
to strip."""

LOCATION, TIME, IDENTITY, DEVICE, OTHER = "location", "time", "identity", "device", "other"
KINDS = (LOCATION, TIME, IDENTITY, DEVICE, OTHER)  # device: the camera, lens and software that made it
