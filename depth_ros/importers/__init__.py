"""Dataset importers: public dataset layouts -> one rosbag2 file with the package's topics.

Layouts: TUM RGB-D (:mod:`.tum`), EuRoC / ASL (:mod:`.euroc`), KITTI raw (:mod:`.kitti`),
7-Scenes (:mod:`.sevenscenes`) and a plain folder of images + intrinsics (:mod:`.folder`). Each
``load_*`` reads the dataset's text files into a :class:`~.common.Dataset`;
:func:`~.bagout.write_dataset` writes it (images and depth read one frame at a time). The command
is ``depth-ros import LAYOUT SRC -o OUT.mcap`` (:mod:`.cli`).
"""
