# Fake SSD1306: remembers the last frame's text lines.
FRAMES = []


class SSD1306_I2C:
    def __init__(self, w, h, i2c):
        self.lines = []

    def fill(self, c):
        self.lines = []

    def text(self, s, x, y):
        self.lines.append(s)

    def show(self):
        FRAMES.append(list(self.lines))
