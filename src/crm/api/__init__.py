"""The HTTP layer: dependencies, the error handler, middleware and one router per surface."""
