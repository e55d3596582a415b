"""The Tencent Cloud Chat (IM) domain: accounts, robots, C2C and streaming messages, delivery."""
