"""Every route of the IM face, for the server to mount."""

from parley.faces.im import rest, subscribe

routes = [*rest.routes, *subscribe.routes]
