import os
import sys

# reference.py and helpers live beside the tests
sys.path.insert(0, os.path.dirname(__file__))
