"""The layer every step stands on: the ``@step`` decorator, its errors, settings and registrations."""
