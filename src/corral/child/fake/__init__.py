"""The fake child: speaks the real protocol with knobs for delays, crashes and hangs."""
