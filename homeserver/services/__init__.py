"""The homeserver's services: the behaviour behind the APIs, between protocol and storage."""
