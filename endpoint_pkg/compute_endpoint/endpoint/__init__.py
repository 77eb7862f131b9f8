"""The endpoint daemon: AMQP on one side, the interchange on the other."""
