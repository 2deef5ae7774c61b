"""Moving the car safely: motors and their safety rules, validated remote commands,
and the fault latch that holds the car after a fault or an unclean exit."""
