"""ltzoo.augment"""
