# Fake `machine` for the MicroPython unix port: pins with IRQ handlers the harness fires, a no-op WDT.
HANDLERS = {}


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, num, mode=-1, pull=-1):
        self.num = num

    def irq(self, trigger=0, handler=None):
        HANDLERS[self.num] = (self, handler)

    def value(self, v=None):
        return 0


def pulse(num, n):
    pin, handler = HANDLERS[num]
    for _ in range(n):
        handler(pin)


class WDT:
    def __init__(self, timeout=0):
        pass

    def feed(self):
        pass


class I2C:
    def __init__(self, *a, **k):
        pass


def deepsleep(ms=0):
    raise SystemExit("deepsleep")
