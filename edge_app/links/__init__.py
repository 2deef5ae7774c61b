"""The car's links to the outside: MQTT and its on-disk spool, gpsd, the live view
and its HTTP base, and systemd's notify protocol."""
