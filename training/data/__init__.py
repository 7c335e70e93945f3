"""Bags to training samples: index, split, static filtering, dataset."""
from depth_ros_training.data.bag_index import BagIndex, IndexOptions, load_or_build_index
from depth_ros_training.data.dataset import BagSequenceDataset, DataConfig, SampleRef, plan_samples

__all__ = ["BagIndex", "BagSequenceDataset", "DataConfig", "IndexOptions", "SampleRef", "load_or_build_index", "plan_samples"]
