"""End-to-end journeys through the demo in a real (headless) Chromium."""
