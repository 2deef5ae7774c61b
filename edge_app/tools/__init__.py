"""Small tools that ship with the car application."""
