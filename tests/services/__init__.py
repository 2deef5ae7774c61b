"""Real services the tests run on loopback: a mosquitto broker, an MJPG stream server,
a gpsd speaker, headless Chromium, and free ports to put them on."""
